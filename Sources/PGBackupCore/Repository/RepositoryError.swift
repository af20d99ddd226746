/// A repository-level problem: a missing or corrupt manifest, a backup id that does not exist,
/// a repository that belongs to another cluster.
public struct RepositoryError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, CustomStringConvertible {
        case backupNotFound
        case corruptManifest
        case unsupportedFormat
        case wrongCluster
        public var description: String { rawValue }
    }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { message }
}
