import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOConcurrencyHelpers
import RedressDomain
import ServiceLifecycle

/// The roles a token can carry. `channel` submits complaints; the rest are staff roles.
public enum Role: String, Sendable, Codable, CaseIterable {
    case channel, agent, supervisor, committee, auditor, admin, coordinator
    case salesLiaison = "sales_liaison"
}

/// Who is calling: the verified claims of a bearer token.
public struct Identity: Sendable, Equatable {
    public var subject: String
    public var role: Role
    /// The org unit the caller belongs to; they see this unit and below.
    public var unit: String
    public var expiresAt: Date
}

/// The claims of a Redress bearer token. `role` and `unit` are Redress's own claims (an identity
/// provider maps them from its directory); the registered claims are checked by `TokenAuthority`.
struct StaffClaims: JWTPayload, Equatable {
    var sub: SubjectClaim
    var role: String
    var unit: String
    var iss: IssuerClaim
    var aud: AudienceClaim
    var iat: IssuedAtClaim
    var nbf: NotBeforeClaim?
    var exp: ExpirationClaim

    /// jwt-kit calls this after the signature verified. The claims are checked by the authority,
    /// which knows the issuer, audience, clock and maximum lifetime, so nothing more here.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// What a token must be to be accepted: from whom (`iss`), for whom (`aud`), for how long at most.
public struct TokenPolicy: Sendable, Equatable {
    public var issuer: String
    public var audience: String
    /// A token whose `exp` lies further than this after its `iat` is refused, whoever signed it.
    public var maxLifetime: Duration
    /// Clock difference tolerated between the issuer and this process, for `nbf` and `iat`.
    public var leeway: Duration = .seconds(60)

    public init(issuer: String = "redress", audience: String = "redress-api", maxLifetime: Duration = .seconds(12 * 3600)) {
        self.issuer = issuer
        self.audience = audience
        self.maxLifetime = maxLifetime
    }
}

/// Bearer tokens, through jwt-kit. Two ways to be set up:
/// - **Identity provider** (production): RS256 or ES256 tokens, verified against the provider's
///   JWKS (`REDRESS_OIDC_JWKS`, a file or an https URL, reloaded by `JWKSRefresher`). HS256 tokens
///   are refused, and this process cannot mint tokens.
/// - **Shared secret** (development and the test suite): HS256 with `REDRESS_JWT_SECRET`; the
///   process can mint (the console for its calls, `redressctl token`, the tests).
/// Either way every token must carry the policy's `iss` and `aud`, an `exp` in the future, no `nbf`
/// in the future, and a lifetime (`exp - iat`) within the policy's maximum.
public final class TokenAuthority: Sendable {
    public let policy: TokenPolicy
    /// jwt-kit's key collection is an actor, filled on first use (`keys()`), so that an authority can
    /// be made in synchronous set-up code; the key material itself is read and checked at once.
    private struct KeySet: Sendable {
        let collection = JWTKeyCollection()
        var installed = false
        let install: @Sendable (JWTKeyCollection) async -> Void
        /// The algorithms accepted in a token's header: exactly those of the configured keys.
        let algorithms: Set<String>
    }
    private let keySet: NIOLockedValueBox<KeySet>
    public let canMint: Bool
    /// The key id minted tokens name, so a verifier holding several keys finds the right one.
    private let mintKid: JWKIdentifier?

    /// HS256 with a shared secret: development and tests.
    public init(secret: String, policy: TokenPolicy = TokenPolicy()) {
        self.policy = policy
        let hmac = HMACKey(from: Data(secret.utf8))
        keySet = NIOLockedValueBox(KeySet(install: { await $0.add(hmac: hmac, digestAlgorithm: .sha256) }, algorithms: ["HS256"]))
        canMint = true
        mintKid = nil
    }

    /// RS256/ES256 tokens of an identity provider, verified against its JWKS documents (several:
    /// the provider's, and the console's public key when the console signs its own calls).
    public convenience init(jwks: String, policy: TokenPolicy) throws(Failure) {
        try self.init(jwks: [jwks], policy: policy)
    }

    public init(jwks documents: [String], policy: TokenPolicy) throws(Failure) {
        self.policy = policy
        keySet = NIOLockedValueBox(try Self.keySet(jwks: documents))
        canMint = false
        mintKid = nil
    }

    /// The console's own ES256 key, with which it signs its calls to the APIs when staff tokens come
    /// from an identity provider (the APIs list its public key among their JWKS sources).
    public init(signingKeyPEM pem: String, kid: String, policy: TokenPolicy) throws(Failure) {
        self.policy = policy
        let key: ES256PrivateKey
        do {
            key = try ES256PrivateKey(pem: pem)
        } catch {
            throw .badKeys("the console's signing key is not a P-256 private key in PEM")
        }
        let identifier = JWKIdentifier(string: kid)
        keySet = NIOLockedValueBox(KeySet(install: { await $0.add(ecdsa: key, kid: identifier) }, algorithms: ["ES256"]))
        canMint = true
        mintKid = identifier
    }

    /// A new P-256 key for the console: its private key (PEM, for `REDRESS_CONSOLE_SIGNING_KEY`) and
    /// a JWKS with its public key (for the APIs' `REDRESS_OIDC_JWKS`).
    public static func newConsoleKey(kid: String) -> (privatePEM: String, jwks: String) {
        let key = ES256PrivateKey()
        let parameters = key.publicKey.parameters!
        let jwks = #"{"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "\#(kid)", "x": "\#(parameters.x)", "y": "\#(parameters.y)"}]}"#
        return (key.pemRepresentation, jwks)
    }

    /// Replaces the identity provider's keys (a rotated JWKS); tokens signed by a key no longer
    /// listed are refused from now on.
    public func replaceKeys(jwks: String) throws(Failure) {
        try replaceKeys(jwks: [jwks])
    }

    public func replaceKeys(jwks documents: [String]) throws(Failure) {
        let fresh = try Self.keySet(jwks: documents)
        keySet.withLockedValue { $0 = fresh }
    }

    /// Reads every key of the JWKS documents (jwt-kit's types), refusing what cannot be used.
    private static func keySet(jwks documents: [String]) throws(Failure) -> KeySet {
        var keys: [JWK] = []
        for jwks in documents {
            do {
                keys += try JSONDecoder().decode(JWKS.self, from: Data(jwks.utf8)).keys
            } catch {
                throw .badKeys("a JWKS document is not valid JSON with a \"keys\" array")
            }
        }
        guard !keys.isEmpty else { throw .badKeys("the JWKS has no keys") }
        var rsa: [(JWKIdentifier, Insecure.RSA.PublicKey)] = []
        var ec: [(JWKIdentifier, ES256PublicKey)] = []
        for key in keys {
            guard let kid = key.keyIdentifier else { throw .badKeys("every key of the JWKS needs a \"kid\"") }
            do {
                switch key.keyType {
                case .rsa:
                    guard let n = key.modulus, let e = key.exponent else { throw Failure.badKeys("RSA key '\(kid.string)' lacks n or e") }
                    rsa.append((kid, try Insecure.RSA.PublicKey(modulus: n, exponent: e)))
                case .ecdsa:
                    guard key.curve?.rawValue == "P-256", let x = key.x, let y = key.y else {
                        throw Failure.badKeys("EC key '\(kid.string)' is not a P-256 key with x and y (ES256)")
                    }
                    ec.append((kid, try ES256PublicKey(parameters: (x, y))))
                default:
                    throw Failure.badKeys("key '\(kid.string)' is \(key.keyType.rawValue); only RSA (RS256) and EC P-256 (ES256) are accepted")
                }
            } catch let failure as Failure {
                throw failure
            } catch {
                throw .badKeys("key '\(kid.string)' cannot be read: \(error)")
            }
        }
        let (rsaKeys, ecKeys) = (rsa, ec)
        return KeySet(install: { collection in
            for (kid, key) in rsaKeys { await collection.add(rsa: key, digestAlgorithm: .sha256, kid: kid) }
            for (kid, key) in ecKeys { await collection.add(ecdsa: key, kid: kid) }
        }, algorithms: Set((rsaKeys.isEmpty ? [] : ["RS256"]) + (ecKeys.isEmpty ? [] : ["ES256"])))
    }

    /// The key collection, filled with the keys on first use.
    private func keys() async -> (JWTKeyCollection, Set<String>) {
        let set = keySet.withLockedValue { $0 }
        if !set.installed {
            await set.install(set.collection)
            // Installing twice (two first requests at once) adds the same keys again: harmless.
            keySet.withLockedValue { current in
                if current.collection === set.collection { current.installed = true }
            }
        }
        return (set.collection, set.algorithms)
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed
        case badSignature
        case expired
        case notYetValid
        case wrongIssuer(String)
        case wrongAudience
        case tooLong(Int)
        case algorithm(String)
        case unknownRole(String)
        case badKeys(String)

        public var description: String {
            switch self {
            case .malformed: "the bearer token is not a JWT (header.payload.signature) with sub, role, unit, iss, aud, iat and exp"
            case .badSignature: "the bearer token's signature does not verify against this deployment's keys; sign in again"
            case .expired: "the bearer token has expired; sign in again"
            case .notYetValid: "the bearer token is not valid yet (nbf or iat in the future); check the issuer's clock"
            case .wrongIssuer(let issuer): "the bearer token was issued by '\(issuer)', not by this deployment's issuer"
            case .wrongAudience: "the bearer token is not meant for this API (aud); request a token for it"
            case .tooLong(let hours): "the bearer token lives longer than the \(hours) hours allowed; request a shorter one"
            case .algorithm(let alg): "the bearer token's algorithm '\(alg)' is not accepted here"
            case .unknownRole(let role): "the bearer token's role '\(role)' is not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))"
            case .badKeys(let why): "the identity provider's keys cannot be used: \(why)"
            }
        }
    }

    /// Signs a token for `subject` (shared-secret set-up only; nil when this process cannot mint).
    public func mint(subject: String, role: Role, unit: String, lifetime: Duration = .seconds(8 * 3600), now: Date = Date()) async -> String {
        precondition(canMint, "this process verifies an identity provider's tokens and cannot mint")
        let issued = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let claims = StaffClaims(sub: .init(value: subject), role: role.rawValue, unit: unit, iss: .init(value: policy.issuer),
                                 aud: .init(value: [policy.audience]), iat: .init(value: issued), nbf: .init(value: issued),
                                 exp: .init(value: issued.addingTimeInterval(Double(lifetime.components.seconds))))
        let (collection, _) = await keys()
        // Signing a well-formed payload with a key we hold cannot fail; a failure would be a programming error.
        return try! await collection.sign(claims, kid: mintKid)
    }

    public func verify(_ token: String, now: Date = Date()) async throws(Failure) -> Identity {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Self.decodeBase64URL(parts[0]),
              let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any]
        else { throw .malformed }
        // Only the configured keys' algorithms: "none", and HS256 where an identity provider signs, are refused.
        let alg = header["alg"] as? String ?? ""
        let (collection, algorithms) = await keys()
        guard algorithms.contains(alg) else { throw .algorithm(alg) }
        let claims: StaffClaims
        do {
            claims = try await collection.verify(token, as: StaffClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed || error.errorType == .unknownKID {
            throw .badSignature
        } catch let error as JWTError where error.errorType == .malformedToken || error.errorType == .claimVerificationFailure {
            throw .malformed
        } catch is DecodingError {
            throw .malformed
        } catch {
            throw .badSignature
        }
        let leeway = Double(policy.leeway.components.seconds)
        guard claims.iss.value == policy.issuer else { throw .wrongIssuer(claims.iss.value) }
        guard claims.aud.value.contains(policy.audience) else { throw .wrongAudience }
        guard claims.exp.value > now else { throw .expired }
        if let nbf = claims.nbf, nbf.value.timeIntervalSince(now) > leeway { throw .notYetValid }
        guard claims.iat.value.timeIntervalSince(now) <= leeway else { throw .notYetValid }
        let maxLifetime = Double(policy.maxLifetime.components.seconds)
        guard claims.exp.value.timeIntervalSince(claims.iat.value) <= maxLifetime else { throw .tooLong(Int(maxLifetime / 3600)) }
        guard let role = Role(rawValue: claims.role) else { throw .unknownRole(claims.role) }
        return Identity(subject: claims.sub.value, role: role, unit: claims.unit, expiresAt: claims.exp.value)
    }

    static func decodeBase64URL(_ text: Substring) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}

/// Reloads the identity provider's JWKS (a file, or an https URL) every `interval`, so a key the
/// provider rotates in is accepted and one it withdraws is refused. A failed reload keeps the keys
/// in use and is logged; the next interval tries again.
public struct JWKSRefresher: Service {
    let source: String
    let authority: TokenAuthority
    let interval: Duration
    let logger: Logger

    public init(source: String, authority: TokenAuthority, interval: Duration, logger: Logger) {
        self.source = source
        self.authority = authority
        self.interval = interval
        self.logger = logger
    }

    /// Every source of a comma-separated `REDRESS_OIDC_JWKS`, read.
    public static func loadAll(_ sources: String) async throws -> [String] {
        var documents: [String] = []
        for source in sources.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !source.isEmpty {
            documents.append(try await load(source))
        }
        return documents
    }

    public static func load(_ source: String) async throws -> String {
        if source.hasPrefix("https://") || source.hasPrefix("http://") {
            var request = HTTPClientRequest(url: source)
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            guard response.status == .ok else { throw JWKSLoadError(detail: "GET \(source) answered \(response.status.code)") }
            let body = try await response.body.collect(upTo: 1 << 20)
            return String(buffer: body)
        }
        return try String(contentsOfFile: source, encoding: .utf8)
    }

    public func run() async throws {
        while !Task.isCancelledOrShuttingDown {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            if Task.isCancelledOrShuttingDown { return }
            do {
                try authority.replaceKeys(jwks: try await Self.loadAll(source))
                logger.debug("identity provider keys reloaded", metadata: ["source": "\(source)"])
            } catch {
                logger.error("identity provider keys not reloaded; the previous keys stay in use", metadata: ["source": "\(source)", "error": "\(error)"])
            }
        }
    }
}

public struct JWKSLoadError: Error, CustomStringConvertible {
    public var detail: String
    public var description: String { detail }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
