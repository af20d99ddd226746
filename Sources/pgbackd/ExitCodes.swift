import ObjectStorage
import PGBackdSupport
import PGBackupCore
import PostgresClient

/// Exit codes, from sysexits.h where one fits, so scripts and systemd can tell failures apart.
/// Documented in docs/operations.md.
enum ExitCodes {
    static let failure: Int32 = 1
    /// A drill ran and a check failed: the backup is not sound.
    static let checkFailed: Int32 = 1
    /// A drill ran, nothing failed, but the drill host could not verify everything (an
    /// extension it lacks): neither a pass nor a finding about the backup.
    static let unverifiable: Int32 = 3
    /// A drill or restore could not run (as opposed to ran and found a problem).
    static let operational: Int32 = 70     // EX_SOFTWARE
    static let dataError: Int32 = 65        // EX_DATAERR: a corrupt manifest or object
    static let notFound: Int32 = 66         // EX_NOINPUT: no such backup
    static let databaseUnavailable: Int32 = 69 // EX_UNAVAILABLE: PostgreSQL unreachable
    static let toolMissing: Int32 = 72      // EX_OSFILE: pg_dump of the right version missing
    /// A restore's target (database or data directory) is not empty and --force was not given.
    static let targetExists: Int32 = 73     // EX_CANTCREAT
    static let usage: Int32 = 64            // EX_USAGE: arguments that cannot be used
    static let storageIO: Int32 = 74        // EX_IOERR: storage unreachable or failing
    static let repositoryMissing: Int32 = 76 // the bucket does not exist
    static let permission: Int32 = 77       // EX_NOPERM: credentials or privileges refused
    static let configuration: Int32 = 78    // EX_CONFIG
    /// `run`: another daemon holds this repository's lock.
    static let locked: Int32 = 75           // EX_TEMPFAIL
    /// wal-fetch only: above 125, so PostgreSQL aborts recovery instead of ending it early.
    static let fatalForRecovery: Int32 = 126

    static func code(for error: any Error) -> Int32 {
        switch error {
        case is ConfigurationError:
            return configuration
        case let error as DaemonLockError:
            return error.reason == nil ? locked : operational
        case let error as BackupError:
            switch error.code {
            case .databaseUnreachable, .databaseNotFound: return databaseUnavailable
            case .toolMissing: return toolMissing
            case .insufficientPrivilege: return permission
            case .serverNotReady: return configuration
            case .walNotArchived: return storageIO
            case .failed: return failure
            default: return failure
            }
        case let error as StorageError:
            switch error.code {
            case .invalidCredentials, .accessDenied: return permission
            case .bucketNotFound: return repositoryMissing
            case .notFound: return notFound
            default: return storageIO
            }
        case let error as RepositoryError:
            switch error.code {
            case .backupNotFound: return notFound
            case .wrongCluster: return configuration
            default: return dataError
            }
        case let error as PostgresError:
            // 42501: a privilege the role lacks; authentication: who we are was refused.
            return error.code == .authenticationFailed || error.sqlState == "42501" ? permission : databaseUnavailable
        case is IntegrityError:
            return dataError
        case let error as RestoreError:
            switch error.code {
            case .pgRestoreFailed, .propertiesFailed: return operational
            case .targetNotEmpty: return targetExists
            case .databaseNotInBackup: return notFound
            case .notABaseBackup, .invalidTarget: return usage
            default: return failure
            }
        case let error as ChildProcessError where error.stderr.contains("permission denied"):
            // pg_dump refused by the server for want of a privilege the probes did not foresee.
            return permission
        case is StagingError:
            return storageIO
        case let error as WALError:
            switch error.code {
            case .notFound: return failure // wal-fetch: exactly 1, "no such file" to PostgreSQL
            case .corrupt, .conflict, .invalidName: return dataError
            default: return storageIO
            }
        default:
            return failure
        }
    }
}
