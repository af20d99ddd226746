/// Why encrypted data or a key could not be used. The message names the object or file and, for
/// keys, the fingerprints involved; it never holds key material.
public struct EncryptionError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        /// The key file is missing or unreadable.
        case keyUnreadable
        /// The key file is readable by group or others: refused, as ssh refuses such keys.
        case keyTooOpen
        /// The key file does not hold 32 bytes in base64.
        case keyMalformed
        /// The data was encrypted under another repository key (fingerprints in the message).
        case wrongKey
        /// The stream ends before its final chunk: the object was cut short.
        case truncated
        /// A chunk fails authentication: flipped bits, chunks reordered, or a different data key.
        case tampered
        /// The object decrypts, but it was written as another object (a swapped object).
        case wrongObject
        /// Not an encrypted object of this format.
        case notEncrypted
        /// The object names a data key the repository has no wrapped copy of.
        case unknownDataKey
        /// The stanza is encrypted but the configuration names no key.
        case keyNotConfigured
        /// The configuration names a key but the stanza was created without encryption.
        case notEncryptedRepository
        /// libsodium could not be initialised.
        case unavailable
        public var description: String { rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
