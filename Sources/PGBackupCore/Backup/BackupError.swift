/// Why a backup (or the checks before one) could not run, with what to do about it.
public typealias BackupError = CodedError<BackupErrorCode>

/// The codes of ``BackupError``.
public enum BackupErrorCode: String, ErrorCode {
    /// PostgreSQL refused or did not answer the connection.
    case databaseUnreachable
    /// A configured or requested database does not exist or refuses connections.
    case databaseNotFound
    /// pg_dump (or another client program) of the right version is not installed.
    case toolMissing
    /// The role lacks a privilege the backup needs.
    case insufficientPrivilege
    /// The server is not set up for the backup asked for (base backups need WAL archiving
    /// and, for now, the default tablespace only).
    case serverNotReady
    /// A base backup's last WAL segment did not reach the repository in time.
    case walNotArchived
    /// A step failed while dumping or storing.
    case failed
}
