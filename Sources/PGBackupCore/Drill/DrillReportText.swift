import Foundation

/// A drill report as `pgbackd drill` prints it. A failed check's evidence is grouped by the
/// constraint, rule or check it is about: each group's totals, then its first rows. Nothing is
/// dropped silently: what is not shown is counted, and `--json` has it.
public enum DrillReportText {
    static let rowsPerGroup = 5
    static let linesPerGroup = 20

    public static func lines(_ report: DrillReport) -> [String] {
        let all = report.checks + report.databases.flatMap(\.checks)
        let failed = all.filter { !$0.passed }.count
        let skipped = all.filter { $0.passed && $0.figures["skipped"] == 1 }.count
        let verdict = (report.verdict ?? report.computedVerdict) == .unverifiable ? "NOT VERIFIABLE ON THIS HOST" : report.passed ? "PASSED" : "FAILED"
        let upgrade = report.servers.flatMap { $0.isUpgrade ? " into PostgreSQL \($0.description)" : nil } ?? ""
        var lines = ["drill \(report.drillId) of backup \(report.backupId)\(upgrade): \(verdict) (\(all.count - failed - skipped) of \(all.count) checks passed\(skipped > 0 ? ", \(skipped) skipped" : ""))"]
        lines += checkLines(report.checks)
        for database in report.databases {
            lines.append("")
            lines.append("database \(database.name) (scratch \(database.scratchDatabase)\(database.kept ? ", kept" : ""); restore \(String(format: "%.1f", database.restoreSeconds)) s, checks \(String(format: "%.1f", database.checkSeconds)) s)")
            lines += checkLines(database.checks)
        }
        return lines
    }

    static func checkLines(_ checks: [CheckResult]) -> [String] {
        let width = max(checks.map(\.name.count).max() ?? 0, 12)
        var lines: [String] = []
        for check in checks {
            // A skipped check passed (the backup is not at fault) but proved nothing: say so.
            let mark = !check.passed ? (check.unverifiable == true ? "N/A " : "FAIL") : check.figures["skipped"] == 1 ? "skip" : "ok  "
            lines.append("  \(mark) \(check.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(check.summary)")
            if !check.passed {
                lines += evidenceLines(check.evidence).map { "         " + $0 }
            }
        }
        return lines
    }

    public static func evidenceLines(_ evidence: [[String: String]]) -> [String] {
        var order: [String] = []
        var groups: [String: [[String: String]]] = [:]
        for row in evidence {
            let key = row["constraint"].map { "constraint \($0) on \(row["table"] ?? "")" } ?? row["rule"].map { "rule \($0)" } ?? row["check"] ?? ""
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(row)
        }
        var lines: [String] = []
        for key in order {
            let rows = groups[key]!
            // Rows that name one offending row are samples; the others describe the group.
            let samples = rows.filter { $0["row"] != nil }
            let notes = rows.filter { $0["row"] == nil }
            for note in notes.prefix(linesPerGroup) { lines.append(render(note)) }
            if notes.count > linesPerGroup { lines.append("… and \(notes.count - linesPerGroup) more (full list: --json)") }
            for sample in samples.prefix(rowsPerGroup) { lines.append("  " + render(sample)) }
            let total = notes.compactMap { $0["rows"].flatMap { Int64($0) } }.reduce(0, +)
            if samples.count > rowsPerGroup {
                var more = "  … and \(samples.count - rowsPerGroup) more (full list: --json)"
                if total > Int64(samples.count) { more = "  … and \(total - Int64(rowsPerGroup)) more (the first \(samples.count) in --json)" }
                lines.append(more)
            } else if total > Int64(samples.count), !samples.isEmpty {
                lines.append("  … and \(total - Int64(samples.count)) more")
            }
        }
        return lines
    }

    public static func render(_ row: [String: String]) -> String {
        row.filter { $0.key != "rows" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }
}
