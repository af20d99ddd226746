/// A repository-level problem: a missing or corrupt manifest, a backup id that does not exist,
/// a repository that belongs to another cluster.
public typealias RepositoryError = CodedError<RepositoryErrorCode>

/// The codes of ``RepositoryError``.
public enum RepositoryErrorCode: String, ErrorCode {
    case backupNotFound
    case corruptManifest
    case unsupportedFormat
    case wrongCluster
    /// A repository error's message says all (a corrupt manifest's decoding error stays in logs).
    public static var describesUnderlying: Bool { false }
}
