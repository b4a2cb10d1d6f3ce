/// What every sandbox runs before its script: the `kube` helper module Karmada's
/// customizations `require`, and the `require` that knows only it.
enum LuaPrelude {
    static let source = #"""
        local kube = {}

        local binary = { Ki = 2^10, Mi = 2^20, Gi = 2^30, Ti = 2^40, Pi = 2^50, Ei = 2^60 }
        local decimal = { n = 1e-9, u = 1e-6, m = 1e-3, [""] = 1, k = 1e3, M = 1e6, G = 1e9, T = 1e12, P = 1e15, E = 1e18 }

        -- A resource.Quantity ("500m", "1Gi", "2", 3) as a number of units (cores, bytes).
        function kube.getResourceQuantity(quantity)
          if type(quantity) == "number" then return quantity end
          if type(quantity) ~= "string" then return 0 end
          local number, suffix = string.match(quantity, "^%s*([+-]?%d*%.?%d+)([a-zA-Z]*)%s*$")
          if number == nil then
            local mantissa, exponent = string.match(quantity, "^%s*([+-]?%d*%.?%d+)[eE]([+-]?%d+)%s*$")
            if mantissa == nil then error("not a quantity: " .. quantity, 2) end
            return tonumber(mantissa) * 10 ^ tonumber(exponent)
          end
          local scale = binary[suffix] or decimal[suffix]
          if scale == nil then error("not a quantity: " .. quantity, 2) end
          return tonumber(number) * scale
        end

        local function format(resource, amount)
          if resource == "cpu" then return string.format("%dm", math.ceil(amount * 1000 - 1e-9)) end
          return string.format("%d", math.ceil(amount - 1e-9))
        end

        -- What one replica of a pod template asks of a node: the larger of the containers' summed
        -- requests and any one init container's, its node selector, tolerations and required affinity.
        function kube.accuratePodRequirements(podTemplate)
          local spec = (podTemplate or {}).spec or {}
          local sums = {}
          for _, container in ipairs(spec.containers or {}) do
            for resource, quantity in pairs(((container.resources or {}).requests) or {}) do
              sums[resource] = (sums[resource] or 0) + kube.getResourceQuantity(quantity)
            end
          end
          for _, container in ipairs(spec.initContainers or {}) do
            for resource, quantity in pairs(((container.resources or {}).requests) or {}) do
              local amount = kube.getResourceQuantity(quantity)
              if amount > (sums[resource] or 0) then sums[resource] = amount end
            end
          end
          for resource, quantity in pairs(spec.overhead or {}) do
            sums[resource] = (sums[resource] or 0) + kube.getResourceQuantity(quantity)
          end
          local request = {}
          for resource, amount in pairs(sums) do request[resource] = format(resource, amount) end
          local requirements = { resourceRequest = request }
          local claim = {}
          if spec.nodeSelector ~= nil then claim.nodeSelector = spec.nodeSelector end
          if spec.tolerations ~= nil then claim.tolerations = spec.tolerations end
          local affinity = ((spec.affinity or {}).nodeAffinity or {}).requiredDuringSchedulingIgnoredDuringExecution
          if affinity ~= nil then claim.hardNodeAffinity = affinity end
          if next(claim) ~= nil then requirements.nodeClaim = claim end
          if spec.priorityClassName ~= nil then requirements.priorityClassName = spec.priorityClassName end
          if (podTemplate.metadata or {}).namespace ~= nil then requirements.namespace = podTemplate.metadata.namespace end
          return requirements
        end

        -- The ConfigMaps, Secrets, ServiceAccount and PersistentVolumeClaims a pod template uses,
        -- each once, as {apiVersion, kind, namespace, name}.
        function kube.getPodDependencies(podTemplate, namespace)
          local spec = (podTemplate or {}).spec or {}
          local found, list = {}, {}
          local function add(kind, name)
            if name == nil or name == "" then return end
            local key = kind .. "/" .. name
            if found[key] then return end
            found[key] = true
            list[#list + 1] = { apiVersion = "v1", kind = kind, namespace = namespace, name = name }
          end
          for _, volume in ipairs(spec.volumes or {}) do
            if volume.configMap then add("ConfigMap", volume.configMap.name) end
            if volume.secret then add("Secret", volume.secret.secretName) end
            if volume.persistentVolumeClaim then add("PersistentVolumeClaim", volume.persistentVolumeClaim.claimName) end
            for _, source in ipairs((volume.projected or {}).sources or {}) do
              if source.configMap then add("ConfigMap", source.configMap.name) end
              if source.secret then add("Secret", source.secret.name) end
            end
          end
          local containers = {}
          for _, list in ipairs({ spec.initContainers or {}, spec.containers or {}, spec.ephemeralContainers or {} }) do
            for _, container in ipairs(list) do containers[#containers + 1] = container end
          end
          for _, container in ipairs(containers) do
            for _, variable in ipairs(container.env or {}) do
              local from = variable.valueFrom or {}
              if from.configMapKeyRef then add("ConfigMap", from.configMapKeyRef.name) end
              if from.secretKeyRef then add("Secret", from.secretKeyRef.name) end
            end
            for _, source in ipairs(container.envFrom or {}) do
              if source.configMapRef then add("ConfigMap", source.configMapRef.name) end
              if source.secretRef then add("Secret", source.secretRef.name) end
            end
          end
          for _, secret in ipairs(spec.imagePullSecrets or {}) do add("Secret", secret.name) end
          local account = spec.serviceAccountName
          if account ~= nil and account ~= "" and account ~= "default" then add("ServiceAccount", account) end
          return list
        end

        local loaded = { kube = kube }
        require = function(name)
          local module = loaded[name]
          if module == nil then error("module '" .. tostring(name) .. "' is not available in this sandbox (only 'kube')", 2) end
          return module
        end
        """#
}
