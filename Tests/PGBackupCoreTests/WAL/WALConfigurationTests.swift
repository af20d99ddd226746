@testable import PGBackupCore
import Testing

@Suite struct WALConfigurationTests {
    func parse(_ text: String) throws -> Configuration {
        try Configuration.parse(text, file: "/etc/pgbackd/test.toml")
    }

    @Test func defaults() throws {
        let wal = try parse("").wal
        #expect(wal.mode == .spool)
        #expect(wal.spoolDirectory == "/var/lib/pgbackd/spool")
        #expect(wal.maxSpoolMiB == 10240)
        #expect(wal.maxSpoolBytes == 10240 << 20)
        #expect(wal.maxLagSeconds == 300)
        #expect(wal.parallelUploads == 4)
    }

    @Test func theIssueExampleParsesAsWritten() throws {
        let wal = try parse("""
            [wal]
            mode = "sync"                          # or "spool"
            spool_dir = "/srv/spool"
            max_spool_mib = 512
            max_lag_seconds = 60
            parallel_uploads = 8
            """).wal
        #expect(wal.mode == .sync)
        #expect(wal.spoolDirectory == "/srv/spool")
        #expect(wal.maxSpoolMiB == 512)
        #expect(wal.maxLagSeconds == 60)
        #expect(wal.parallelUploads == 8)
    }

    func failure(_ text: String) -> ConfigurationError? {
        do {
            _ = try parse(text)
            return nil
        } catch {
            return error as? ConfigurationError
        }
    }

    @Test func invalidValuesNameTheKey() throws {
        let mode = try #require(failure("[wal]\nmode = \"async\"\n"))
        #expect(mode.key == "wal.mode")
        #expect(mode.description.contains("expected one of \"spool\", \"sync\""))
        let relative = try #require(failure("[wal]\nspool_dir = \"spool\"\n"))
        #expect(relative.key == "wal.spool_dir")
        #expect(relative.code == .invalidValue)
        let zero = try #require(failure("[wal]\nparallel_uploads = 0\n"))
        #expect(zero.key == "wal.parallel_uploads")
        let type = try #require(failure("[wal]\nmax_spool_mib = \"10G\"\n"))
        #expect(type.code == .wrongType)
        let unknown = try #require(failure("[wal]\nspool_dirr = \"/x\"\n"))
        #expect(unknown.code == .unknownKey)
        #expect(unknown.description.contains("did you mean 'spool_dir'"))
    }
}
