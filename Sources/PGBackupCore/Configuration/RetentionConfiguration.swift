/// `[retention]`: which backups `pgbackd expire` keeps, applied to logical and base backups
/// separately. A backup kept by any rule is kept (GFS, as pgBackRest and restic count it).
public struct RetentionConfiguration: Sendable, Equatable {
    /// The newest N backups. Default 7.
    public var keepLast: Int
    /// The newest backup of each of the newest N UTC calendar days that have a backup. Default 14.
    public var keepDaily: Int
    /// The newest backup of each of the newest N ISO weeks (UTC) that have a backup. Default 8.
    public var keepWeekly: Int
    /// The newest backup of each of the newest N UTC calendar months that have a backup. Default 12.
    public var keepMonthly: Int
    /// The newest N backups are kept whatever the other rules say. At least 1, so expire never
    /// empties a kind. Default 2.
    public var minKeep: Int

    public init(keepLast: Int = 7, keepDaily: Int = 14, keepWeekly: Int = 8, keepMonthly: Int = 12, minKeep: Int = 2) {
        self.keepLast = keepLast
        self.keepDaily = keepDaily
        self.keepWeekly = keepWeekly
        self.keepMonthly = keepMonthly
        self.minKeep = minKeep
    }

    init(_ reader: TOMLReader?) throws {
        self.init()
        guard let reader else { return }
        keepLast = try reader.int("keep_last", in: 0...100_000, default: keepLast)
        keepDaily = try reader.int("keep_daily", in: 0...100_000, default: keepDaily)
        keepWeekly = try reader.int("keep_weekly", in: 0...100_000, default: keepWeekly)
        keepMonthly = try reader.int("keep_monthly", in: 0...100_000, default: keepMonthly)
        minKeep = try reader.int("min_keep", in: 1...100_000, default: minKeep)
        try reader.rejectUnknownKeys()
    }
}
