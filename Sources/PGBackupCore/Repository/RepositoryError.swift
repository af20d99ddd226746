/// A repository-level problem: a missing or corrupt manifest, a backup id that does not exist,
/// a repository that belongs to another cluster.
public struct RepositoryError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public static let backupNotFound = Code(name: "backupNotFound")
        public static let corruptManifest = Code(name: "corruptManifest")
        public static let unsupportedFormat = Code(name: "unsupportedFormat")
        public static let wrongCluster = Code(name: "wrongCluster")
        public var description: String { name }
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
