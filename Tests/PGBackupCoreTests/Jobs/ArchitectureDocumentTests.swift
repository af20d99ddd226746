import Foundation
import Testing

/// docs/architecture.md is the map of the code: every module under Sources/ and every folder of
/// PGBackupCore is on it, and it names no folder that is gone.
struct ArchitectureDocumentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func directories(_ path: String) throws -> [String] {
        let url = Self.root.appendingPathComponent(path)
        return try FileManager.default.contentsOfDirectory(atPath: url.path).filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: url.appendingPathComponent(name).path, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
    }

    @Test func everyModuleAndFolderIsOnTheMap() throws {
        let map = try String(contentsOf: Self.root.appendingPathComponent("docs/architecture.md"), encoding: .utf8)
        for module in try directories("Sources") {
            #expect(map.contains("`\(module)`"), "docs/architecture.md does not name the module \(module)")
        }
        let folders = try directories("Sources/PGBackupCore")
        for folder in folders {
            #expect(map.contains("`\(folder)/`"), "docs/architecture.md does not name PGBackupCore's folder \(folder)/")
        }
        // Folders the map names in PGBackupCore's list must exist.
        let list = try #require(map.range(of: "`PGBackupCore` folders").map { map[$0.upperBound...] })
        let section = list[..<(list.range(of: "\n## ")?.lowerBound ?? list.endIndex)]
        let named = section.matches(of: /`([A-Z][A-Za-z]+)\/`/).map { String($0.output.1) }
        #expect(!named.isEmpty)
        for folder in named {
            #expect(folders.contains(folder), "docs/architecture.md names \(folder)/, which PGBackupCore does not have")
        }
    }
}
