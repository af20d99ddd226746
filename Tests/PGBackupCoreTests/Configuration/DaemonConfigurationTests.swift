import Foundation
@testable import PGBackupCore
import Testing

struct DaemonConfigurationTests {
    func parse(_ text: String) throws -> Configuration {
        try Configuration.parse(text, file: "test.toml")
    }

    func expectError(_ text: String, key: String, containing message: String) {
        #expect {
            _ = try parse(text)
        } throws: { error in
            guard let error = error as? ConfigurationError else { return false }
            return error.key == key && error.message.contains(message)
        }
    }

    @Test func defaults() throws {
        let configuration = try parse("")
        #expect(configuration.schedule.jobs.isEmpty)
        #expect(configuration.schedule.catchUp)
        #expect(configuration.daemon.stopTimeoutSeconds == 60)
        #expect(configuration.daemon.stateDirectory == "/var/lib/pgbackd")
        #expect(configuration.daemon.walWatcher)
        #expect(configuration.daemon.maxBackupAge == nil)
        #expect(configuration.metrics.listen == nil)
    }

    @Test func theIssueExample() throws {
        let configuration = try parse("""
            [schedule]
            time_zone = "Europe/Berlin"
            backup = "0 2 * * *"
            base_backup = "0 1 * * 0"
            drill = "30 3 * * *"
            retention = "0 5 * * *"
            wal_check = "15 * * * *"
            catch_up = false
            [daemon]
            stop_timeout_seconds = 120
            state_dir = "/srv/pgbackd"
            max_backup_age = "26h"
            max_unverified_age = "8d"
            [metrics]
            listen = "127.0.0.1:9187"
            """)
        #expect(configuration.schedule.timeZone.identifier == "Europe/Berlin")
        #expect(Set(configuration.schedule.jobs.keys) == Set(JobKind.allCases))
        #expect(configuration.schedule.jobs[.drill]?.description == "30 3 * * *")
        #expect(!configuration.schedule.catchUp)
        #expect(configuration.daemon.stopTimeoutSeconds == 120)
        #expect(configuration.daemon.stateDirectory == "/srv/pgbackd")
        #expect(configuration.daemon.maxBackupAge == .seconds(26 * 3600))
        #expect(configuration.daemon.maxUnverifiedAge == .seconds(8 * 86400))
        #expect(configuration.metrics.listen?.host == "127.0.0.1")
        #expect(configuration.metrics.listen?.port == 9187)
    }

    @Test func emptyListenMeansNoEndpoint() throws {
        #expect(try parse("[metrics]\nlisten = \"\"").metrics.listen == nil)
        #expect(try parse("[metrics]\nlisten = \"[::1]:9187\"").metrics.listen?.host == "::1")
    }

    @Test func errorsNameTheKey() throws {
        expectError("[schedule]\nbackup = \"0 25 * * *\"", key: "schedule.backup", containing: "outside 0-23")
        expectError("[schedule]\ntime_zone = \"Mars/Olympus\"", key: "schedule.time_zone", containing: "unknown time zone")
        expectError("[schedule]\nbackups = \"0 2 * * *\"", key: "schedule.backups", containing: "did you mean 'backup'")
        expectError("[schedule]\ncatch_up = \"yes\"", key: "schedule.catch_up", containing: "true or false")
        expectError("[daemon]\nstop_timeout_seconds = 0", key: "daemon.stop_timeout_seconds", containing: "from 1 to 86400")
        expectError("[daemon]\nstate_dir = \"state\"", key: "daemon.state_dir", containing: "absolute")
        expectError("[daemon]\nmax_backup_age = \"26\"", key: "daemon.max_backup_age", containing: "\"26h\"")
        expectError("[daemon]\nmax_backup_age = \"-1h\"", key: "daemon.max_backup_age", containing: "duration")
        expectError("[metrics]\nlisten = \"9187\"", key: "metrics.listen", containing: "host:port")
        expectError("[metrics]\nlisten = \":9187\"", key: "metrics.listen", containing: "host is required")
        // The endpoint binds an address, it does not resolve names (but localhost).
        expectError("[metrics]\nlisten = \"metrics.example:9187\"", key: "metrics.listen", containing: "is not an IP address")
        #expect(try parse("[metrics]\nlisten = \"localhost:9187\"").metrics.listen?.host == "localhost")
        #expect(try parse("[metrics]\nlisten = \"0.0.0.0:9187\"").metrics.listen?.host == "0.0.0.0")
        expectError("[metrics]\nlisen = \"127.0.0.1:9187\"", key: "metrics.lisen", containing: "did you mean 'listen'")
    }

    @Test func reloadRejectsWhatNeedsARestart() throws {
        let old = try parse("[repository]\npath = \"/a\"\n[schedule]\nbackup = \"0 2 * * *\"")
        #expect(DaemonReload.restartRequired(old: old, new: try parse("[repository]\npath = \"/a\"\n[schedule]\nbackup = \"0 3 * * *\"")) == nil)
        #expect(DaemonReload.restartRequired(old: old, new: try parse("[repository]\npath = \"/b\"")) != nil)
        #expect(DaemonReload.restartRequired(old: old, new: try parse("[repository]\npath = \"/a\"\n[daemon]\nstate_dir = \"/x\"")) != nil)
        #expect(DaemonReload.restartRequired(old: old, new: try parse("[repository]\npath = \"/a\"\n[metrics]\nlisten = \"127.0.0.1:1\"")) != nil)
    }
}
