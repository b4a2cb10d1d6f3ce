import HTTPTypes
import Hummingbird
import Logging
import NIOSSL
import TetherSecurity
import TetherStore

/// Outermost, on every route: parses the query once onto the context, and turns every error
/// into a Kubernetes `Status` (``APIError``): the store's by their code, Hummingbird's unmatched
/// route as Kubernetes words it, anything else as a logged 500.
struct APIRequestMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let logger: Logger

    func handle(_ request: Request, context: APIRequestContext, next: (Request, APIRequestContext) async throws -> Response) async throws -> Response
    {
        var context = context
        context.query = RequestQuery(request.uri.query)
        do {
            return try await next(request, context)
        } catch let error as APIError {
            throw error
        } catch let error as StoreError {
            throw APIError(error)
        } catch let error as HTTPError where error.status == .notFound {
            throw APIError.notFound("the server could not find the requested resource")
        } catch let error as HTTPError {
            throw APIError(code: error.status.code, reason: error.status.reasonPhrase, message: error.body ?? error.status.reasonPhrase)
        } catch {
            logger.error("API request failed", metadata: ["tether.error": "\(error)", "tether.path": "\(request.uri.path)"])
            throw APIError(code: 500, reason: "InternalError", message: "\(error)")
        }
    }
}

/// Answers 429 beyond the in-flight caps, before anything else is spent on the request.
/// Watches are counted per user where they start instead (they stay open by design).
struct InFlightMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let limiter: InFlightLimiter

    func handle(_ request: Request, context: APIRequestContext, next: (Request, APIRequestContext) async throws -> Response) async throws -> Response
    {
        if request.method == .get, context.query.watch { return try await next(request, context) }
        let kind: InFlightLimiter.Kind = [.get, .head].contains(request.method) ? .read : .write
        guard limiter.enter(kind) else {
            let most = kind == .read ? limiter.limits.maximumReadsInFlight : limiter.limits.maximumWritesInFlight
            throw APIError.tooManyRequests(
                "too many requests are being served; try again later (the server answers at most \(most) \(kind == .read ? "reads" : "writes") at once)"
            )
        }
        defer { limiter.leave(kind) }
        return try await next(request, context)
    }
}

/// Who is asking: a bearer token, else a user certificate from the federation CA. Sets
/// `context.caller`; a request without either ends here (401), as does a certificate that is
/// not a user's (403).
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = APIRequestContext
    let access: AccessControl
    let trustDomain: String

    func handle(_ request: Request, context: APIRequestContext, next: (Request, APIRequestContext) async throws -> Response) async throws -> Response
    {
        var context = context
        let caller = try await caller(of: request, on: context)
        context.caller = caller
        // Acting as another user (`kubectl --as`) is not modelled by the hub's roles. Ignoring
        // the headers would run the request with the caller's own rights, more than the user
        // meant to use: refuse it instead.
        if let impersonation = request.headers.first(where: { $0.name.canonicalName.lowercased().hasPrefix("impersonate-") }) {
            throw APIError.forbidden(
                "users \"\(caller.user)\" is forbidden: the hub does not support impersonation (\(impersonation.name.canonicalName)); run kubectl without --as/--as-group, with the credentials of the user to act as"
            )
        }
        return try await next(request, context)
    }

    private func caller(of request: Request, on context: APIRequestContext) async throws(APIError) -> Caller {
        let access = self.access.current
        if let header = request.headers[.authorization] {
            guard header.hasPrefix("Bearer "), let token = access.user(forToken: String(header.dropFirst("Bearer ".count))) else {
                throw APIError.unauthorized("Unauthorized: the bearer token is not valid")
            }
            return Caller(user: token.user, role: token.role, method: "token")
        }
        if let certificate = try? await context.channel.nioSSL_peerCertificate().get(),
            let parsed = try? TetherTLS.certificate(from: certificate),
            let identity = try? TetherIdentity(certificate: parsed)
        {
            // Another hub of the federation sending a member-proxy request on, for its caller.
            if case .hub = identity.role, identity.trustDomain == trustDomain, let forwarded = Self.forwardedCaller(of: request) {
                return forwarded
            }
            guard case .user(let name) = identity.role, identity.trustDomain == trustDomain else {
                throw APIError.forbidden("\(identity) is not a user identity; use a certificate for spiffe://\(trustDomain)/user/NAME")
            }
            return Caller(user: name, role: access.role(ofUser: name), method: "certificate")
        }
        throw APIError.unauthorized("Unauthorized: present a client certificate from the federation CA or a bearer token")
    }

    /// The user a hub acts for (`Tether-Forwarded-User`, with its federation role), on the
    /// member proxy only: anywhere else a hub certificate is no caller.
    private static func forwardedCaller(of request: Request) -> Caller? {
        guard let user = HTTPField.Name("Tether-Forwarded-User").flatMap({ request.headers[$0] }), !user.isEmpty,
            request.uri.path.hasPrefix("/clusters/"), request.uri.path.contains("/proxy")
        else { return nil }
        let role = HTTPField.Name("Tether-Forwarded-Role").flatMap { request.headers[$0] }.flatMap(APIRole.init(rawValue:))
        return Caller(user: user, role: role, method: "forwarded")
    }
}
