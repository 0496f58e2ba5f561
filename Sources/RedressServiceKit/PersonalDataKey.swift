import Crypto
import Foundation

/// The keyed hash other services match a customer by (HMAC-SHA256 of the normalised phone number):
/// equal numbers give equal keys, and without the deployment's key the number cannot be recovered.
public struct PersonalDataKey: Sendable {
    private let key: SymmetricKey

    public init(secret: String) {
        key = SymmetricKey(data: Data(secret.utf8))
    }

    public func customerKey(phone: String) -> String {
        let digits = phone.filter(\.isNumber)
        let mac = HMAC<SHA256>.authenticationCode(for: Data(digits.utf8), using: key)
        return Hex.encode(mac)
    }

    /// The same for an 18-character ID number (the check character upper-cased). Prefixed, so an ID
    /// number's key never equals a phone number's.
    public func idNumberKey(_ idNumber: String) -> String {
        let normalised = "id:" + idNumber.trimmingCharacters(in: .whitespaces).uppercased()
        let mac = HMAC<SHA256>.authenticationCode(for: Data(normalised.utf8), using: key)
        return Hex.encode(mac)
    }
}

enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
