import Crypto
import Foundation

/// AWS Signature Version 4, our own rather than libcurl's `CURLOPT_AWS_SIGV4`: libcurl 7.88
/// signs the query string exactly as written, neither sorting the parameters
/// (`?uploadId=X&partNumber=1` and `?list-type=2&prefix=a&max-keys=1` are rejected) nor adding
/// the `=` of a bare name (`?uploads`, `?delete` are rejected), and it neither sends nor signs
/// `x-amz-content-sha256`. Measured against a SigV4-verifying moto_server (2026-11-25); the
/// signer is checked against AWS's published examples and botocore (S3SigV4Tests). Signing
/// ourselves also lets us sign exactly the Host we send.
struct SigV4Signer: Sendable {
    var accessKeyID: String
    var secretAccessKey: String
    var region: String
    var service: String

    static let algorithm = "AWS4-HMAC-SHA256"
    /// Hex SHA-256 of no bytes.
    static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    static let unsignedPayload = "UNSIGNED-PAYLOAD"

    struct Signature {
        var authorization: String
        var canonicalRequest: String
        var stringToSign: String
        var signature: String
    }

    /// Signs a request. `headers` must hold every header to sign, `host` and `x-amz-date` among
    /// them; `canonicalURI` and `canonicalQuery` are already in canonical form.
    func sign(
        method: String,
        canonicalURI: String,
        canonicalQuery: String,
        headers: [(name: String, value: String)],
        payloadHash: String,
        amzDate: String
    ) -> Signature {
        var merged: [String: [String]] = [:]
        for header in headers {
            merged[header.name.lowercased(), default: []].append(Self.trimmedHeaderValue(header.value))
        }
        let names = merged.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(merged[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let canonicalRequest = [
            method, canonicalURI, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")

        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            Self.algorithm, amzDate, scope, Self.hex(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")

        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey(day: day)))
        let authorization = "\(Self.algorithm) Credential=\(accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return Signature(authorization: authorization, canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature)
    }

    func signingKey(day: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ text: String) -> SymmetricKey {
            SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key)))
        }
        let secret = SymmetricKey(data: Array("AWS4\(secretAccessKey)".utf8))
        return hmac(hmac(hmac(hmac(secret, day), region), service), "aws4_request")
    }

    /// Header values are trimmed and runs of spaces collapse to one.
    static func trimmedHeaderValue(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Hex SHA-256 of a payload, for `x-amz-content-sha256`.
    static func payloadHash(_ bytes: [UInt8]) -> String {
        bytes.isEmpty ? emptyPayloadHash : hex(SHA256.hash(data: bytes))
    }

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC.
    static func amzDate(_ date: Date) -> String {
        let c = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }
}

/// Percent-encoding as SigV4 wants it.
enum AWSPercentEncoding {
    /// Every byte but the unreserved `A-Z a-z 0-9 - _ . ~` as `%XX` (upper-case hex); `/` kept
    /// when `keepSlash` (object key paths), encoded otherwise (query names and values).
    static func encode(_ text: String, keepSlash: Bool) -> String {
        let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"),
                UInt8(ascii: "."), UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepSlash:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// One `name=value` of a request's query. A value of "" is sent as `name=`, which S3 treats
/// like a bare `name` (`?uploads=`).
struct QueryItem: Sendable, Hashable {
    var name: String
    var value: String

    init(_ name: String, _ value: String = "") {
        self.name = name
        self.value = value
    }

    /// Byte-wise order of the encoded name, then value (Swift's `<` on strings is not byte order
    /// outside ASCII).
    static func byteOrder(_ a: (String, String), _ b: (String, String)) -> Bool {
        if a.0 != b.0 { return a.0.utf8.lexicographicallyPrecedes(b.0.utf8) }
        return a.1.utf8.lexicographicallyPrecedes(b.1.utf8)
    }

    /// The query as sent and as the signature covers it (the canonical query string): names and
    /// values AWS-encoded, sorted by byte order, so what is sent is what AWS signs.
    static func wireQuery(_ items: [QueryItem]) -> String {
        items.map { (AWSPercentEncoding.encode($0.name, keepSlash: false), AWSPercentEncoding.encode($0.value, keepSlash: false)) }
            .sorted(by: QueryItem.byteOrder)
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }
}
