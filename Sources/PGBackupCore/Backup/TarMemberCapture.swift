/// Watches a tar stream go by and keeps the contents of a few named members: a base backup's
/// `backup_label` (start LSN and timeline) and the `backup_manifest` pg_basebackup appends when it
/// writes to stdout (the stop LSN). pg_basebackup prints neither position with `-X none`.
///
/// Reads ustar headers only (what PostgreSQL writes): 512-byte blocks, octal or base-256 sizes,
/// the ustar prefix field. Members are never copied unless captured.
struct TarMemberCapture {
    /// Names to keep (as in the archive, e.g. `backup_label`), and the most bytes kept of each.
    let wanted: Set<String>
    let limit: Int
    private(set) var captured: [String: [UInt8]] = [:]
    /// Set when the stream stops looking like a tar; capture then stops, the bytes still flow.
    private(set) var malformed = false

    private var header: [UInt8] = []
    /// Bytes of the current member's data (and then its padding) still to come.
    private var remainingData = 0
    private var remainingPadding = 0
    private var capturing: String?
    private var endOfArchive = false

    init(wanted: Set<String>, limit: Int = 64 << 20) {
        self.wanted = wanted
        self.limit = limit
        header.reserveCapacity(512)
    }

    mutating func consume(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { consume($0) }
    }

    mutating func consume(_ bytes: UnsafeBufferPointer<UInt8>) {
        var offset = 0
        while offset < bytes.count, !malformed, !endOfArchive {
            if remainingData > 0 {
                let take = min(remainingData, bytes.count - offset)
                if let name = capturing, captured[name, default: []].count + take <= limit {
                    captured[name, default: []].append(contentsOf: bytes[offset..<offset + take])
                }
                remainingData -= take
                offset += take
                if remainingData == 0 { capturing = nil }
            } else if remainingPadding > 0 {
                let take = min(remainingPadding, bytes.count - offset)
                remainingPadding -= take
                offset += take
            } else {
                let take = min(512 - header.count, bytes.count - offset)
                header.append(contentsOf: bytes[offset..<offset + take])
                offset += take
                if header.count == 512 {
                    startMember()
                    header.removeAll(keepingCapacity: true)
                }
            }
        }
    }

    private mutating func startMember() {
        if header.allSatisfy({ $0 == 0 }) {
            endOfArchive = true  // two zero blocks end the archive; one is enough to stop looking
            return
        }
        guard let size = Self.size(header[124..<136]) else {
            malformed = true
            return
        }
        var name = Self.string(header[0..<100])
        let magic = Self.string(header[257..<262])
        if magic == "ustar" {
            let prefix = Self.string(header[345..<500])
            if !prefix.isEmpty { name = prefix + "/" + name }
        }
        if name.hasPrefix("./") { name.removeFirst(2) }
        remainingData = size
        remainingPadding = (512 - size % 512) % 512
        capturing = wanted.contains(name) && size > 0 ? name : nil
        if wanted.contains(name) && size == 0 { captured[name] = [] }
    }

    static func string(_ field: ArraySlice<UInt8>) -> String {
        String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// Octal digits (space or NUL padded), or base-256 when the high bit of the first byte is set.
    static func size(_ field: ArraySlice<UInt8>) -> Int? {
        guard let first = field.first else { return nil }
        if first & 0x80 != 0 {
            var value = Int(first & 0x7F)
            for byte in field.dropFirst() { value = value << 8 | Int(byte) }
            return value
        }
        let digits = field.drop { $0 == 0x20 }.prefix { (0x30...0x37).contains($0) }
        guard !digits.isEmpty else { return nil }
        return digits.reduce(0) { $0 * 8 + Int($1 - 0x30) }
    }
}
