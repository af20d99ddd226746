/// What a SIGHUP may change. Schedules, `[postgres]`, `[drill]`, `[checks]`, `[alerts]`,
/// `[compression]` and the stop timeout apply at once (a running job keeps the configuration it
/// started with); the repository, the state directory, the WAL watcher and the metrics address
/// are bound at start and need a restart.
public enum DaemonReload {
    /// Why `new` cannot replace `old` without a restart; nil when it can.
    public static func restartRequired(old: Configuration, new: Configuration) -> String? {
        if DaemonLock.repositoryIdentity(old) != DaemonLock.repositoryIdentity(new) {
            return "[repository] changed (\(RepositoryFactory.describe(old)) → \(RepositoryFactory.describe(new))); that needs a restart"
        }
        if old.daemon.stateDirectory != new.daemon.stateDirectory { return "daemon.state_dir changed; that needs a restart" }
        if old.daemon.walWatcher != new.daemon.walWatcher || old.wal.mode != new.wal.mode || old.wal.spoolDirectory != new.wal.spoolDirectory {
            return "the WAL watcher's settings (daemon.wal_watcher, wal.mode, wal.spool_dir) changed; that needs a restart"
        }
        if old.metrics != new.metrics { return "metrics.listen changed; that needs a restart" }
        return nil
    }
}
