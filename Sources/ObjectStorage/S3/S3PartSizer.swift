/// Chooses each multipart part's size so an upload never needs more than S3's 10,000 parts,
/// every part but the last is at least 5 MiB, and none exceeds 5 GiB.
///
/// - With an expected size of at most ``singlePutSize`` (16 MiB: a WAL segment, a manifest), the
///   first part holds all of it, so the object is one PUT even when `partSize` is smaller.
/// - With a larger expected size, parts are `max(partSize, expected / 8,000)` (rounded up to a
///   MiB): the expected bytes fit in 8,000 parts, all the same size. If the hint was low, the
///   remaining 2,000 parts double in size every 100 (up to 5 GiB), which holds 5 TiB whatever
///   the hint was.
/// - Without one (a backup's stream), the first 8,000 parts are `partSize` (125 GiB at 16 MiB)
///   and the remaining 2,000 double every 100 as above, so 10,000 parts hold more than 5 TiB
///   even from the 5 MiB minimum (5.9 TiB), and memory stays `partSize × (parallelParts + 1)`
///   whatever the database's size up to 8,000 parts. (Until issue #17 the size doubled every
///   900 parts, so a backup stored larger than 14 GiB held parts of 32 MiB and more.)
struct S3PartSizer: Sendable, Equatable {
    static let minimumPartSize = 5 << 20
    static let maximumPartSize = 5 << 30
    static let maximumParts = 10_000
    static let maximumObjectSize: Int64 = 5 << 40
    /// Objects announced at up to this size are sent as one PUT whatever the part size: 16 MiB,
    /// the part size before issue #17 lowered the default to 8 MiB, so WAL segments stay one
    /// request each.
    static let singlePutSize = 16 << 20

    /// Size of parts 1 ... `steadyParts`.
    let baseSize: Int
    let steadyParts: Int
    /// After the steady parts the size doubles every `growthInterval` parts.
    let growthInterval: Int

    init(partSize: Int, expectedSize: Int64?) {
        let configured = min(max(partSize, Self.minimumPartSize), Self.maximumPartSize)
        if let expectedSize, expectedSize > 0 {
            let mebibyte: Int64 = 1 << 20
            let needed = (expectedSize + 7_999) / 8_000
            let rounded = (needed + mebibyte - 1) / mebibyte * mebibyte
            let whole = expectedSize <= Int64(Self.singlePutSize) ? expectedSize : 0
            baseSize = Int(min(max(Int64(configured), rounded, whole), Int64(Self.maximumPartSize)))
            steadyParts = 8_000
            growthInterval = 100
        } else {
            baseSize = configured
            steadyParts = 8_000
            growthInterval = 100
        }
    }

    /// The size of part `number` (1-based) when it is not the last.
    func size(ofPart number: Int) -> Int {
        guard number > steadyParts else { return baseSize }
        let doublings = min((number - steadyParts - 1) / growthInterval + 1, 20)
        return min(baseSize << doublings, Self.maximumPartSize)
    }

    /// The most bytes `maximumParts` parts can hold.
    var capacity: Int64 {
        var total: Int64 = 0
        var number = 1
        while number <= Self.maximumParts {
            total += Int64(size(ofPart: number))
            number += 1
        }
        return total
    }
}
