import Foundation
import Testing

@testable import ObjectStorage

@Suite struct S3PartSizerTests {
    static let mebibyte = 1 << 20
    static let tebibyte: Int64 = 1 << 40

    /// The parts an upload of `total` bytes is cut into.
    func parts(_ sizer: S3PartSizer, total: Int64) -> (count: Int, sizes: [Int]) {
        var remaining = total
        var sizes: [Int] = []
        while remaining > 0 {
            let size = Int(min(Int64(sizer.size(ofPart: sizes.count + 1)), remaining))
            sizes.append(size)
            remaining -= Int64(size)
            if sizes.count > 20_000 { break }
        }
        return (sizes.count, sizes)
    }

    func checkLimits(_ sizes: [Int], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(sizes.count <= S3PartSizer.maximumParts, sourceLocation: sourceLocation)
        for size in sizes.dropLast() {
            #expect(size >= S3PartSizer.minimumPartSize && size <= S3PartSizer.maximumPartSize, sourceLocation: sourceLocation)
        }
        #expect((sizes.last ?? 0) <= S3PartSizer.maximumPartSize, sourceLocation: sourceLocation)
    }

    @Test(arguments: [5 * mebibyte, 6 * mebibyte, 8 * mebibyte, 16 * mebibyte, 64 * mebibyte, 5 << 30])
    func unknownSizeReaches5TiB(partSize: Int) {
        let sizer = S3PartSizer(partSize: partSize, expectedSize: nil)
        #expect(sizer.capacity >= S3PartSizer.maximumObjectSize)
        let (count, sizes) = parts(sizer, total: S3PartSizer.maximumObjectSize)
        #expect(count <= 10_000)
        checkLimits(sizes)
    }

    @Test func unknownSizeKeepsTheConfiguredSizeAtFirst() {
        let sizer = S3PartSizer(partSize: 16 * Self.mebibyte, expectedSize: nil)
        #expect((1...8_000).allSatisfy { sizer.size(ofPart: $0) == 16 * Self.mebibyte })
        #expect(sizer.size(ofPart: 8_001) == 32 * Self.mebibyte)
        #expect(sizer.size(ofPart: 8_101) == 64 * Self.mebibyte)
        // A typical 2.6 GB dump stays at 16 MiB parts: memory stays partSize × (parallel + 1).
        #expect(parts(sizer, total: 2_600_000_000).sizes.allSatisfy { $0 <= 16 * Self.mebibyte })
        // So does a 100 GiB base backup (issue #17: memory must not grow with the database; the
        // size doubled from 14 GiB before).
        #expect(parts(sizer, total: Int64(100) << 30).sizes.allSatisfy { $0 <= 16 * Self.mebibyte })
    }

    @Test(arguments: [
        Int64(0), 1, Int64(5 << 20), Int64(12 << 20), Int64(1 << 30), Int64(100) << 30, tebibyte, 3 * tebibyte,
        S3PartSizer.maximumObjectSize - 1, S3PartSizer.maximumObjectSize,
    ])
    func expectedSizeFitsAndToleratesALowHint(expected: Int64) {
        let sizer = S3PartSizer(partSize: 16 * Self.mebibyte, expectedSize: expected)
        // However low the hint was, 5 TiB still fit.
        #expect(sizer.capacity >= S3PartSizer.maximumObjectSize)
        // Exactly as announced, 2× and 10× more, and S3's maximum.
        for actual in [expected, min(expected * 2, S3PartSizer.maximumObjectSize), min(expected * 10, S3PartSizer.maximumObjectSize), S3PartSizer.maximumObjectSize] {
            let (count, sizes) = parts(sizer, total: actual)
            #expect(count <= 10_000, "expected \(expected), actual \(actual): \(count) parts")
            checkLimits(sizes)
        }
        // As announced, every part has the same size (no growth).
        let asAnnounced = parts(sizer, total: expected).sizes
        #expect(Set(asAnnounced.dropLast()).count <= 1)
    }

    @Test func theDefaultsHoldAtMost24MiBOfParts() throws {
        let configuration = S3Configuration(endpoint: try #require(URL(string: "http://127.0.0.1:9000")), bucket: "b", region: "us-east-1", accessKeyID: "k", secretAccessKey: "s")
        #expect(configuration.partSize == 8 * Self.mebibyte)
        #expect(configuration.parallelParts == 2)
        #expect(configuration.partSize * (configuration.parallelParts + 1) == 24 * Self.mebibyte)
    }

    /// A WAL segment (announced, at most 16 MiB compressed) stays one PUT with 8 MiB parts.
    @Test(arguments: [Int64(1), Int64(5 << 20), Int64(8 << 20) + 1, Int64(12 << 20), Int64(16 << 20)])
    func objectsAnnouncedUpTo16MiBAreOnePart(expected: Int64) {
        let sizer = S3PartSizer(partSize: 8 * Self.mebibyte, expectedSize: expected)
        #expect(parts(sizer, total: expected).count == 1)
        // A low hint still cuts valid parts.
        checkLimits(parts(sizer, total: expected * 3).sizes)
    }

    @Test func objectsAnnouncedAbove16MiBUseTheConfiguredPartSize() {
        let sizer = S3PartSizer(partSize: 8 * Self.mebibyte, expectedSize: Int64(16 << 20) + 1)
        #expect(sizer.size(ofPart: 1) == 8 * Self.mebibyte)
    }

    @Test func smallPartSizesAreRaisedToTheMinimum() {
        #expect(S3PartSizer(partSize: 1024, expectedSize: nil).size(ofPart: 1) == S3PartSizer.minimumPartSize)
        #expect(S3PartSizer(partSize: 1024, expectedSize: 10).size(ofPart: 1) == S3PartSizer.minimumPartSize)
        #expect(S3PartSizer(partSize: Int.max, expectedSize: nil).size(ofPart: 1) == S3PartSizer.maximumPartSize)
    }

    @Test func largeExpectedSizesGrowThePartSize() {
        let sizer = S3PartSizer(partSize: 16 * Self.mebibyte, expectedSize: Self.tebibyte)
        // 1 TiB / 8,000 parts ≈ 131.1 MiB, rounded up to whole MiB.
        #expect(sizer.size(ofPart: 1) == 132 * Self.mebibyte)
        #expect(parts(sizer, total: Self.tebibyte).count <= 8_000)
    }
}
