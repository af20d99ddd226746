import Foundation
import Testing
@testable import Encryption

/// The object format: what it protects against is each tested by doing it to real ciphertext.
struct ObjectCipherTests {
    let key = try! WrappedKey.generate(scope: "backups/b1", under: try! RepositoryKey.generate()).0

    func encrypt(_ plain: [UInt8], name: String, key: DataKey? = nil, slices: Int = 7) throws -> [UInt8] {
        let encryptor = try ObjectEncryptor(key: key ?? self.key, name: name)
        var output: [UInt8] = []
        var offset = 0
        let step = max(1, plain.count / slices + 1)
        while offset < plain.count {
            output += encryptor.update(Array(plain[offset..<min(offset + step, plain.count)]))
            offset += step
        }
        return output + encryptor.finish()
    }

    func decrypt(_ cipher: [UInt8], name: String, key: DataKey? = nil, slice: Int = 10_000) throws(EncryptionError) -> [UInt8] {
        let decryptor = try ObjectDecryptor(key: key ?? self.key, name: name)
        var output: [UInt8] = []
        var offset = 0
        while offset < cipher.count {
            output += try decryptor.update(Array(cipher[offset..<min(offset + slice, cipher.count)]))
            offset += slice
        }
        return output + (try decryptor.finish())
    }

    static func bytes(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) } }

    @Test(arguments: [0, 1, 65_535, 65_536, 65_537, 3 * 65_536, 300_001])
    func roundTripsAndItsSizeIsKnownFromThePlainSize(_ count: Int) throws {
        let plain = Self.bytes(count)
        let cipher = try encrypt(plain, name: "main/backups/b1/app.dump.gz")
        #expect(try decrypt(cipher, name: "main/backups/b1/app.dump.gz") == plain)
        #expect(Int64(cipher.count) == ObjectCipher.encryptedSize(plainSize: Int64(count), name: "main/backups/b1/app.dump.gz"))
        #expect(ObjectCipher.plainSize(encryptedSize: Int64(cipher.count), name: "main/backups/b1/app.dump.gz") == Int64(count))
        #expect(Array(cipher.prefix(8)) == ObjectCipher.magic)
    }

    @Test func noPlainTextSurvives() throws {
        let marker = Array("MARKER-3f9c-journal-entry".utf8)
        let plain = Array(repeating: marker, count: 5000).flatMap { $0 }
        let cipher = try encrypt(plain, name: "o")
        #expect(cipher.firstRange(of: marker) == nil)
    }

    @Test func aFlippedBitIsNamed() throws {
        var cipher = try encrypt(Self.bytes(200_000), name: "o")
        cipher[100_000] ^= 0x04
        #expect(throws: EncryptionError.self) { try decrypt(cipher, name: "o") }
        do { _ = try decrypt(cipher, name: "o") } catch { #expect(error.code == .tampered && error.message.contains("o fails authentication")) }
    }

    @Test func aTruncatedObjectIsNamed() throws {
        let cipher = try encrypt(Self.bytes(200_000), name: "o")
        let full = ObjectCipher.chunkSize + 17
        let header = 8 + 16 + 24 + 2 + 1 + 17
        // Cut at a chunk boundary (the final chunk gone) and inside a chunk.
        for cut in [header + full, header + 2 * full, cipher.count - 5] {
            do {
                _ = try decrypt(Array(cipher.prefix(cut)), name: "o")
                Issue.record("a cut at \(cut) of \(cipher.count) bytes decrypted")
            } catch {
                #expect(error.code == .truncated, "cut at \(cut): \(error)")
            }
        }
    }

    @Test func reorderedChunksAreNamed() throws {
        let cipher = try encrypt(Self.bytes(3 * 65_536 + 10), name: "o")
        let full = ObjectCipher.chunkSize + 17
        let header = 8 + 16 + 24 + 2 + 1 + 17
        var swapped = Array(cipher.prefix(header))
        swapped += cipher[(header + full)..<(header + 2 * full)]
        swapped += cipher[header..<(header + full)]
        swapped += cipher[(header + 2 * full)...]
        do {
            _ = try decrypt(swapped, name: "o")
            Issue.record("reordered chunks decrypted")
        } catch {
            #expect(error.code == .tampered)
        }
    }

    @Test func anObjectSwappedWithinABackupNamesWhatItHolds() throws {
        let cipher = try encrypt(Self.bytes(1000), name: "main/backups/b1/a.dump.gz")
        do {
            _ = try decrypt(cipher, name: "main/backups/b1/b.dump.gz")
            Issue.record("a swapped object decrypted")
        } catch {
            #expect(error.code == .wrongObject)
            #expect(error.message == "main/backups/b1/b.dump.gz holds the encrypted content of main/backups/b1/a.dump.gz: the object was swapped or copied")
        }
    }

    @Test func anObjectOfAnotherBackupDoesNotDecrypt() throws {
        let other = try WrappedKey.generate(scope: "backups/b2", under: try RepositoryKey.generate()).0
        let cipher = try encrypt(Self.bytes(1000), name: "o", key: other)
        do {
            _ = try decrypt(cipher, name: "o")
            Issue.record("another data key's object decrypted")
        } catch {
            #expect(error.code == .unknownDataKey)
            #expect(error.message.contains(other.id))
        }
        // A key with the same id but other bytes (a forged keys/ object): authentication fails.
        let forged = DataKey(id: other.id, secret: SecretBytes(random: 32))
        do {
            _ = try decrypt(cipher, name: "o", key: forged)
            Issue.record("a forged data key decrypted")
        } catch {
            #expect(error.code == .tampered)
            #expect(error.message.contains("belongs to another backup"))
        }
    }

    @Test func aPlainObjectIsNotMistakenForAnEncryptedOne() throws {
        do {
            _ = try decrypt(Array(repeating: 0x1f, count: 100), name: "o")
            Issue.record("plain bytes decrypted")
        } catch {
            #expect(error.code == .notEncrypted)
        }
        #expect(ObjectCipher.plainSize(encryptedSize: 10, name: "o") == nil)
    }
}
