"""Operators' everyday calls from the Python `kubernetes` client against a Kubernetes API.

Run by PythonClientTests with KUBECONFIG set; prints one `name: value` line per check, which the
test compares. Any exception fails the run (non-zero exit, traceback on stderr).
"""
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config()
core = client.CoreV1Api()
apps = client.AppsV1Api()
namespace = sys.argv[1]


def say(name, value):
    print(f"{name}: {value}", flush=True)


# The client sends no apiVersion or kind; the server takes them from the URL.
core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
say("namespace", core.read_namespace(namespace).status.phase)

core.create_namespaced_config_map(
    namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings", labels={"tier": "web"}), data={"colour": "blue"})
)
settings = core.read_namespaced_config_map("settings", namespace)
settings.data["colour"] = "green"
core.replace_namespaced_config_map("settings", namespace, settings)
core.patch_namespaced_config_map("settings", namespace, {"data": {"size": "9"}})
settings = core.read_namespaced_config_map("settings", namespace)
say("configmap", f"{settings.data['colour']} {settings.data['size']}")
say("selected", ",".join(c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector="tier=web").items))

container = client.V1Container(name="web", image="nginx:1.27", ports=[client.V1ContainerPort(container_port=80)])
deployment = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="web"),
    spec=client.V1DeploymentSpec(
        replicas=3,
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "web"}), spec=client.V1PodSpec(containers=[container])),
    ),
)
apps.create_namespaced_deployment(namespace, deployment)
created = apps.read_namespaced_deployment("web", namespace)
say("deployment", f"{created.spec.replicas} {created.spec.strategy.type} {created.spec.template.spec.containers[0].image_pull_policy}")

apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
say("scaled", apps.read_namespaced_deployment_scale("web", namespace).spec.replicas)

# A dict body is a strategic merge patch: one container changed by its name, its ports kept.
apps.patch_namespaced_deployment("web", namespace, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}})
patched = apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers
say("image", f"{patched[0].image} {len(patched)} {patched[0].ports[0].container_port}")
# A list body is a JSON patch.
apps.patch_namespaced_deployment("web", namespace, [{"op": "add", "path": "/metadata/labels", "value": {"team": "a"}}])
say("labelled", apps.read_namespaced_deployment("web", namespace).metadata.labels["team"])

# A Pod gets kube-apiserver's defaults; a Job gets a selector made from its uid.
core.create_namespaced_pod(
    namespace, client.V1Pod(metadata=client.V1ObjectMeta(name="one"), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]))
)
pod = core.read_namespaced_pod("one", namespace)
say("pod", f"{pod.spec.restart_policy} {pod.spec.dns_policy} {pod.spec.containers[0].image_pull_policy}")
batch = client.BatchV1Api()
batch.create_namespaced_job(
    namespace,
    client.V1Job(
        metadata=client.V1ObjectMeta(name="once"),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(spec=client.V1PodSpec(restart_policy="Never", containers=[client.V1Container(name="c", image="busybox:1.36")]))
        ),
    ),
)
job = batch.read_namespaced_job("once", namespace)
selected = job.spec.selector.match_labels.get("batch.kubernetes.io/controller-uid") == job.metadata.uid
say("job", f"{'selector from uid' if selected else 'no selector'} {job.spec.template.metadata.labels['job-name']}")

# What the caller may do, and a list by field.
review = client.AuthorizationV1Api().create_self_subject_access_review(
    client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb="delete", group="apps", resource="deployments", namespace=namespace)
        )
    )
)
say("may delete", review.status.allowed)
say("by field", ",".join(c.metadata.name for c in core.list_namespaced_config_map(namespace, field_selector="metadata.name=settings").items))

try:
    apps.create_namespaced_deployment(namespace, deployment)
    say("duplicate", "accepted")
except ApiException as error:
    say("duplicate", f"{error.status} {error.reason}")

try:
    core.read_namespaced_config_map("absent", namespace)
except ApiException as error:
    say("missing", error.status)

events = []
stream = watch.Watch()
for event in stream.stream(core.list_namespaced_config_map, namespace, timeout_seconds=5):
    events.append(f"{event['type']} {event['object'].metadata.name}")
    if len(events) == 1:
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="later")))
    if len(events) == 2:
        stream.stop()
say("watch", ", ".join(events))

core.delete_namespaced_config_map("later", namespace, propagation_policy="Background")
say("after delete", ",".join(sorted(c.metadata.name for c in core.list_namespaced_config_map(namespace).items)))

# metrics-server's API, as scripts read it (served by simulated members; the hub runs no Pod).
try:
    nodes = client.CustomObjectsApi().list_cluster_custom_object("metrics.k8s.io", "v1beta1", "nodes")
    say("node metrics", " ".join(sorted(item["usage"]["cpu"] for item in nodes["items"])))
except ApiException as error:
    say("node metrics", error.status)
