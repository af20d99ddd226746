/// Why a backup (or the checks before one) could not run, with what to do about it.
public struct BackupError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// PostgreSQL refused or did not answer the connection.
        public static let databaseUnreachable = Code(name: "databaseUnreachable")
        /// A configured or requested database does not exist or refuses connections.
        public static let databaseNotFound = Code(name: "databaseNotFound")
        /// pg_dump (or another client program) of the right version is not installed.
        public static let toolMissing = Code(name: "toolMissing")
        /// The role lacks a privilege the backup needs.
        public static let insufficientPrivilege = Code(name: "insufficientPrivilege")
        /// The server is not set up for the backup asked for (base backups need WAL archiving
        /// and, for now, the default tablespace only).
        public static let serverNotReady = Code(name: "serverNotReady")
        /// A base backup's last WAL segment did not reach the repository in time.
        public static let walNotArchived = Code(name: "walNotArchived")
        /// A step failed while dumping or storing.
        public static let failed = Code(name: "failed")
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

    public var description: String {
        guard let underlying else { return message }
        return "\(message): \(underlying)"
    }
}
