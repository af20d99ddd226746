import Compression
import CurlHTTP
import Encryption
import Foundation
import ObjectStorage
import PGBackdSupport
import PostgresClient

/// How a command ends: the table in docs/operations.md ("Exit codes"), which a test compares
/// with this type. sysexits.h codes where one fits, so scripts and systemd tell failures apart.
public enum ExitStatus: Int32, CaseIterable, Sendable {
    case success = 0
    /// The job ran and the data failed a check (a drill check, a WAL gap); for `wal-fetch`,
    /// exactly "the archive has no such file".
    case checkFailed = 1
    /// A drill ran, nothing failed, but the drill host could not verify everything.
    case unverifiable = 3
    case usage = 64             // EX_USAGE
    case dataError = 65         // EX_DATAERR: a corrupt manifest or object
    case notFound = 66          // EX_NOINPUT: no such backup
    case databaseUnavailable = 69 // EX_UNAVAILABLE
    /// The job could not run or could not finish (pg_dump or pg_restore failed, an internal error).
    case jobFailed = 70         // EX_SOFTWARE
    case toolMissing = 72       // EX_OSFILE
    case targetExists = 73      // EX_CANTCREAT
    case storageIO = 74         // EX_IOERR
    case locked = 75            // EX_TEMPFAIL
    case repositoryMissing = 76
    case permission = 77        // EX_NOPERM
    case configuration = 78     // EX_CONFIG
    /// `wal-fetch` only: above 125, so PostgreSQL aborts recovery instead of ending it early.
    case fatalForRecovery = 126
    /// Stopped by SIGTERM or SIGINT: cleaned up, nothing committed (128 + SIGINT, as shells say).
    case cancelled = 130

    /// The one mapping from errors to exit statuses. Every error pgbackd throws is one of the
    /// kinds of ``FailureKind``; each of their codes has its status here, and the compiler checks
    /// that none is left out.
    public init(_ error: any Error) {
        self = switch FailureKind(error) {
        case .configuration(let code):
            switch code {
            case .unreadable, .syntax, .unknownKey, .wrongType, .invalidValue, .missingKey, .secret: .configuration
            }
        case .schedule(let code):
            switch code {
            case .invalidExpression: .configuration
            }
        case .daemonLock(let code):
            switch code {
            case .held: .locked
            case .unusable: .jobFailed
            }
        case .backup(let code):
            switch code {
            case .databaseUnreachable, .databaseNotFound: .databaseUnavailable
            case .toolMissing: .toolMissing
            case .insufficientPrivilege: .permission
            case .serverNotReady: .configuration
            case .walNotArchived: .storageIO
            case .failed: .jobFailed
            }
        case .storage(let code):
            switch code {
            case .invalidCredentials, .accessDenied: .permission
            case .bucketNotFound: .repositoryMissing
            case .notFound: .notFound
            case .cancelled: .cancelled
            case .alreadyExists, .unreachable, .timeout, .serverError, .protocolError, .invalidArgument, .io: .storageIO
            }
        case .curl(let code):
            switch code {
            case .cancelled: .cancelled
            case .unavailable, .connect, .resolve, .timeout, .reset, .tls, .other: .storageIO
            }
        case .repository(let code):
            switch code {
            case .backupNotFound: .notFound
            case .wrongCluster: .configuration
            case .corruptManifest, .unsupportedFormat: .dataError
            }
        case .postgres(let code, let sqlState):
            switch code {
            // 42501: a privilege the role lacks; authentication: who we are was refused.
            case .authenticationFailed: .permission
            case .queryFailed where sqlState == "42501": .permission
            case .connectionFailed, .queryFailed, .connectionLost, .invalidConninfo: .databaseUnavailable
            }
        case .integrity(let code):
            switch code {
            case .missingObject, .sizeMismatch, .checksumMismatch, .corruptCompression, .undecryptable: .dataError
            }
        case .compression(let code):
            switch code {
            case .corrupt, .checksumMismatch, .truncated: .dataError
            case .zlib: .jobFailed
            }
        case .restore(let code):
            switch code {
            case .pgRestoreFailed, .propertiesFailed, .extractFailed: .jobFailed
            case .targetNotEmpty: .targetExists
            case .databaseNotInBackup: .notFound
            case .notABaseBackup, .invalidTarget: .usage
            }
        case .childProcess(let code, let permissionDenied):
            switch code {
            // pg_dump refused by the server for want of a privilege the probes did not foresee.
            case .failed where permissionDenied: .permission
            case .notStarted, .failed: .jobFailed
            }
        case .staging(let code):
            switch code {
            case .unusable, .insufficientSpace: .storageIO
            }
        case .wal(let code):
            switch code {
            case .notFound: .checkFailed // wal-fetch: exactly 1, "no such file" to PostgreSQL
            case .corrupt, .conflict, .invalidName, .ambiguous: .dataError
            case .spoolFull, .verifyFailed, .io: .storageIO
            }
        case .encryption(let code):
            switch code {
            case .keyUnreadable, .keyTooOpen, .keyMalformed, .keyNotConfigured, .notEncryptedRepository: .configuration
            case .wrongKey: .permission
            case .truncated, .tampered, .wrongObject, .notEncrypted, .unknownDataKey: .dataError
            case .unavailable: .jobFailed
            }
        case .checkFailed(let code):
            switch code {
            case .drillFailed, .walIncomplete: .checkFailed
            case .drillUnverifiable: .unverifiable
            }
        case .cancelled:
            .cancelled
        case .interrupted:
            .jobFailed
        case .unexpected:
            .jobFailed
        }
    }

    /// `wal-fetch`: 1 means "no such file" and nothing else; any failure that keeps pgbackd from
    /// knowing stops recovery.
    public static func walFetch(_ error: any Error) -> ExitStatus {
        (error as? WALError)?.code == .notFound ? .checkFailed : .fatalForRecovery
    }
}

/// Every kind of error pgbackd throws, with its code: what ``ExitStatus`` switches over.
public enum FailureKind: Sendable {
    case configuration(ConfigurationError.Code)
    case schedule(CronExpression.ParseError.Code)
    case daemonLock(DaemonLockError.Code)
    case backup(BackupError.Code)
    case storage(StorageError.Code)
    case curl(CurlError.Code)
    case repository(RepositoryError.Code)
    case postgres(PostgresError.Code, sqlState: String?)
    case integrity(IntegrityError.Code)
    case compression(CompressionError.Code)
    case restore(RestoreError.Code)
    case childProcess(ChildProcessError.Code, permissionDenied: Bool)
    case staging(StagingError.Code)
    case wal(WALError.Code)
    case encryption(EncryptionError.Code)
    case checkFailed(JobCheckFailed.Code)
    case cancelled(JobCancelled.Code)
    case interrupted(JobInterrupted.Code)
    /// Not one of pgbackd's error types (Foundation, a decoding error): a bug to report.
    case unexpected

    public init(_ error: any Error) {
        switch error {
        case let error as ConfigurationError: self = .configuration(error.code)
        case let error as CronExpression.ParseError: self = .schedule(error.code)
        case let error as DaemonLockError: self = .daemonLock(error.code)
        case let error as BackupError: self = .backup(error.code)
        case let error as StorageError: self = .storage(error.code)
        case let error as CurlError: self = .curl(error.code)
        case let error as RepositoryError: self = .repository(error.code)
        case let error as PostgresError: self = .postgres(error.code, sqlState: error.sqlState)
        case let error as IntegrityError: self = .integrity(error.code)
        case let error as CompressionError: self = .compression(error.code)
        case let error as RestoreError: self = .restore(error.code)
        case let error as ChildProcessError: self = .childProcess(error.code, permissionDenied: error.stderr.contains("permission denied"))
        case let error as StagingError: self = .staging(error.code)
        case let error as WALError: self = .wal(error.code)
        case let error as EncryptionError: self = .encryption(error.code)
        case let error as JobCheckFailed: self = .checkFailed(error.code)
        case let error as JobCancelled: self = .cancelled(error.code)
        case let error as JobInterrupted: self = .interrupted(error.code)
        case is CancellationError: self = .cancelled(.stop)
        default: self = .unexpected
        }
    }
}
