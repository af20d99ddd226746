import PostgresClient

/// The restored database against the manifest: exact row counts per table, and object counts.
enum SnapshotComparisonChecks {
    /// - Parameter largeObjects: the snapshot's large-object count; nil in older manifests.
    static func rowCounts(_ connection: PostgresConnection, expected: [String: Int64], largeObjects: Int64? = nil) async throws -> CheckResult {
        let restored = try await SnapshotCatalog.rowCounts(connection)
        var evidence: [[String: String]] = []
        for table in Set(expected.keys).union(restored.keys).sorted() {
            let want = expected[table], got = restored[table]
            guard want != got else { continue }
            evidence.append(["table": table, "snapshot_rows": want.map(String.init) ?? "(no such table)", "restored_rows": got.map(String.init) ?? "(missing)"])
        }
        var figures: [String: Int64] = ["tables": Int64(expected.count), "rows": expected.values.reduce(0, +)]
        var objects = ""
        if let largeObjects {
            let restoredObjects = try await SnapshotCatalog.largeObjectCount(connection)
            figures["large_objects"] = largeObjects
            objects = ", \(largeObjects) large object(s)"
            if restoredObjects != largeObjects {
                evidence.append(["table": "(large objects)", "snapshot_rows": String(largeObjects), "restored_rows": String(restoredObjects)])
            }
        }
        figures["tables_differing"] = Int64(evidence.count)
        return CheckResult(name: "row-counts", passed: evidence.isEmpty,
                           summary: evidence.isEmpty ? "\(expected.count) tables, \(figures["rows"]!) rows\(objects): every count equals the snapshot" : "\(evidence.count) table(s) differ from the snapshot counts",
                           figures: figures, evidence: evidence)
    }

    static func objects(_ connection: PostgresConnection, expected: ObjectCensus) async throws -> CheckResult {
        let restored = try await SnapshotCatalog.census(connection, excludingExtensionMembers: expected.excludesExtensionMembers == true)
        var evidence: [[String: String]] = []
        let kinds: [(String, KeyPath<ObjectCensus.Counts, Int>)] = [("tables", \.tables), ("indexes", \.indexes), ("constraints", \.constraints),
                                                                   ("sequences", \.sequences), ("functions", \.functions), ("views", \.views)]
        for schema in Set(expected.schemas.keys).union(restored.schemas.keys).sorted() {
            let want = expected.schemas[schema] ?? .init(), got = restored.schemas[schema] ?? .init()
            for (kind, path) in kinds where want[keyPath: path] != got[keyPath: path] {
                evidence.append(["schema": schema, "kind": kind, "snapshot": String(want[keyPath: path]), "restored": String(got[keyPath: path])])
            }
        }
        return CheckResult(name: "objects", passed: evidence.isEmpty,
                           summary: evidence.isEmpty ? "tables, indexes, constraints, sequences, functions and views match in \(expected.schemas.count) schema(s)" : "\(evidence.count) object count(s) differ",
                           figures: ["schemas": Int64(expected.schemas.count), "differences": Int64(evidence.count)], evidence: evidence)
    }
}
