import Crypto
import Foundation
import RedressDomain

/// The roles a token can carry. `channel` submits complaints; the rest are staff roles.
public enum Role: String, Sendable, Codable, CaseIterable {
    case channel, agent, supervisor, committee, auditor, admin
}

/// Who is calling: the verified claims of a bearer token.
public struct Identity: Sendable, Equatable {
    public var subject: String
    public var role: Role
    /// The org unit the caller belongs to; they see this unit and below.
    public var unit: String
    public var expiresAt: Date
}

/// HS256 JSON Web Tokens: enough for one deployment with one shared secret.
public struct TokenAuthority: Sendable {
    private let key: SymmetricKey

    public init(secret: String) {
        key = SymmetricKey(data: Data(secret.utf8))
    }

    struct Claims: Codable {
        var sub: String
        var role: String
        var unit: String
        var iat: Int
        var exp: Int
    }

    public func mint(subject: String, role: Role, unit: String, lifetime: Duration = .seconds(8 * 3600), now: Date = Date()) -> String {
        let header = Self.base64URL(Data(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let issued = Int(now.timeIntervalSince1970)
        let claims = Claims(sub: subject, role: role.rawValue, unit: unit, iat: issued, exp: issued + Int(lifetime.components.seconds))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let body = Self.base64URL(try! encoder.encode(claims))
        let signingInput = header + "." + body
        let signature = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key)
        return signingInput + "." + Self.base64URL(Data(signature))
    }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case malformed
        case badSignature
        case expired
        case unknownRole(String)

        public var description: String {
            switch self {
            case .malformed: "the bearer token is not a JWT (header.payload.signature)"
            case .badSignature: "the bearer token's signature does not verify; mint a new token for this deployment"
            case .expired: "the bearer token has expired; mint a new one"
            case .unknownRole(let role): "the bearer token's role '\(role)' is not one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))"
            }
        }
    }

    public func verify(_ token: String, now: Date = Date()) throws(Failure) -> Identity {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerData = Self.decodeBase64URL(parts[0]), let body = Self.decodeBase64URL(parts[1]),
              let signature = Self.decodeBase64URL(parts[2])
        else { throw .malformed }
        // Only HS256 is accepted: a token naming another algorithm ("none" included) is refused.
        guard let header = try? JSONDecoder().decode([String: String].self, from: headerData), header["alg"] == "HS256" else {
            throw .malformed
        }
        let signingInput = Data((parts[0] + "." + parts[1]).utf8)
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signingInput, using: key) else {
            throw .badSignature
        }
        guard let claims = try? JSONDecoder().decode(Claims.self, from: body) else { throw .malformed }
        guard Double(claims.exp) > now.timeIntervalSince1970 else { throw .expired }
        guard let role = Role(rawValue: claims.role) else { throw .unknownRole(claims.role) }
        return Identity(subject: claims.sub, role: role, unit: claims.unit, expiresAt: Date(timeIntervalSince1970: Double(claims.exp)))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: Substring) -> Data? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s)
    }
}
