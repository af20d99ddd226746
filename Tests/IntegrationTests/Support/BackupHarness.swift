import Foundation
import Logging
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Builds configurations the way an operator would write them, and checks restores.
enum BackupHarness {
    static func fileConfiguration(_ postgres: TestServices.Postgres, repository: String, databases: [String], level: Int = 1, binDirectory: String? = nil, extra: String = "") throws -> Configuration {
        try Configuration.parse(fileTOML(postgres, repository: repository, databases: databases, level: level, binDirectory: binDirectory, extra: extra), file: "test.toml")
    }

    /// `encryption`: the `[encryption]` table, by default the test run's (``TestServices/encryptionTOML``).
    static func fileTOML(_ postgres: TestServices.Postgres, repository: String, databases: [String], level: Int = 1, binDirectory: String? = nil, extra: String = "",
                         encryption: String = TestServices.encryptionTOML) -> String {
        """
            [repository]
            type = "file"
            path = "\(repository)"
            stanza = "test"
            [postgres]
            conninfo = "\(postgres.conninfo())"
            databases = [\(databases.map { "\"\($0)\"" }.joined(separator: ", "))]
            bin_dir = "\(binDirectory ?? postgres.binDirectory)"
            [compression]
            level = \(level)
            [drill]
            staging_dir = "\(FileManager.default.temporaryDirectory.path)"
            \(extra)
            \(encryption)
            """
    }

    static func s3Configuration(_ postgres: TestServices.Postgres, _ s3: TestServices.S3, prefix: String, databases: [String],
                                level: Int = 1, secret: String? = nil, bucket: String? = nil, binDirectory: String? = nil) throws -> Configuration {
        try Configuration.parse(s3TOML(postgres, s3, prefix: prefix, databases: databases, level: level, secret: secret, bucket: bucket, binDirectory: binDirectory), file: "test.toml")
    }

    static func s3TOML(_ postgres: TestServices.Postgres, _ s3: TestServices.S3, prefix: String, databases: [String],
                       level: Int = 1, secret: String? = nil, bucket: String? = nil, binDirectory: String? = nil) -> String {
        """
        [repository]
        type = "s3"
        stanza = "test"
        [repository.s3]
        endpoint = "\(s3.endpoint)"
        bucket = "\(bucket ?? s3.bucket)"
        region = "\(s3.region)"
        prefix = "\(prefix)"
        access_key_id = "\(s3.accessKeyID)"
        secret_access_key = "\(secret ?? s3.secretAccessKey)"
        part_size_mib = 5
        parallel_parts = 3
        [postgres]
        conninfo = "\(postgres.conninfo())"
        databases = [\(databases.map { "\"\($0)\"" }.joined(separator: ", "))]
        bin_dir = "\(binDirectory ?? postgres.binDirectory)"
        [compression]
        level = \(level)
        \(TestServices.encryptionTOML)
        """
    }

    /// Restores a stored dump with nothing but gunzip and pg_restore, as an operator without
    /// pgbackd would, and returns the database it went into.
    static func restoreWithStandardTools(gzipFile: String, postgres: TestServices.Postgres) async throws -> String {
        let target = try await DaylogFixture.emptyDatabase(postgres)
        let restore = try await shell("/bin/bash", ["-o", "pipefail", "-c",
            "gunzip -c \"$0\" | \"$1\"/pg_restore --no-owner -h \"$2\" -p \"$3\" -U \"$4\" -d \"$5\"",
            gzipFile, postgres.binDirectory, postgres.host, postgres.port, postgres.user, target])
        #expect(restore.status == 0, "gunzip | pg_restore failed: \(restore.stderr)")
        return target
    }

    /// Makes a bin directory whose pg_dump is the real one wrapped by `script`
    /// (`$REAL` is the real pg_dump); every other tool links to the real one.
    static func wrappedPgDump(_ postgres: TestServices.Postgres, script: String) throws -> String {
        try wrappedTool(postgres, "pg_dump", script: script)
    }

    /// A bin directory whose `tool` is the real one wrapped by `script` (`$REAL` is the real
    /// program); the other client programs link to the real ones.
    static func wrappedTool(_ postgres: TestServices.Postgres, _ tool: String, script: String) throws -> String {
        let directory = try temporaryDirectory("bin")
        for other in ["pg_dump", "pg_dumpall", "pg_restore", "psql"] where other != tool {
            try FileManager.default.createSymbolicLink(atPath: "\(directory)/\(other)", withDestinationPath: "\(postgres.binDirectory)/\(other)")
        }
        let wrapper = """
            #!/bin/bash
            REAL="\(postgres.binDirectory)/\(tool)"
            if [ "$1" = "--version" ]; then exec "$REAL" --version; fi
            \(script)
            """
        try writeExecutable(wrapper, to: "\(directory)/\(tool)")
        return directory
    }

    static var logger: Logger {
        var logger = Logger(label: "pgbackd.test")
        logger.logLevel = .warning
        return logger
    }
}
