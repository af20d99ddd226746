import Logging
import ObjectStorage

/// How both kinds of backup end, after ``Repository/beginBackup(kind:systemIdentifier:startedAt:logger:)``.
extension Repository {
    /// The commit point: the manifest, written last, and never once the backup is cancelled.
    func commitBackup(_ manifest: Manifest, logger: Logger) async throws -> Manifest {
        try Task.checkCancellation()
        try await storage.put(key: manifestKey(manifest.backupId), bytes: try manifest.encoded())
        logger.info("\(Self.label(manifest.kind)) committed", metadata: ["backup.raw_bytes": "\(manifest.rawSize)", "backup.stored_bytes": "\(manifest.storedSize)"])
        return manifest
    }

    /// A failed backup: what it stored is deleted again, its data keys last (best effort:
    /// anything left has no manifest, and `expire` removes it as an orphan).
    func discardBackup(_ backupId: String, kind: BackupKind, stored artifacts: [Artifact], after error: any Error, logger: Logger) async {
        logger.error("\(Self.label(kind)) failed; removing what it stored", metadata: ["backup.error": "\(error)"])
        for artifact in artifacts {
            try? await storage.delete(key: key(relative: artifact.key))
        }
        guard let scope = layout.encryptionScope(ofKey: manifestKey(backupId)) else { return }
        for object in (try? await storage.list(prefix: layout.wrappedKeysPrefix(scope: scope))) ?? [] {
            try? await storage.delete(key: object.key)
        }
    }

    private static func label(_ kind: BackupKind) -> String { kind == .base ? "base backup" : "backup" }
}
