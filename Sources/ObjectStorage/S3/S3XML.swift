import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// An element of a parsed S3 response: its name, its own text and its child elements.
final class S3XMLElement {
    let name: String
    fileprivate(set) var text = ""
    fileprivate(set) var children: [S3XMLElement] = []

    init(name: String) {
        self.name = name
    }

    func child(_ name: String) -> S3XMLElement? {
        children.first { $0.name == name }
    }

    func children(_ name: String) -> [S3XMLElement] {
        children.filter { $0.name == name }
    }

    /// The text of the first child called `name`.
    func string(_ name: String) -> String? {
        child(name)?.text
    }
}

private final class S3XMLTreeBuilder: NSObject, XMLParserDelegate {
    var stack: [S3XMLElement] = []
    var root: S3XMLElement?
    /// S3's answers nest four levels at most. A document nested deeper is not one, and a tree of
    /// 100,000 nested elements overflowed the stack when it was freed (a crash of pgbackd).
    static let maximumDepth = 32
    private(set) var tooDeep = false

    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
        guard stack.count < Self.maximumDepth else {
            tooDeep = true
            parser.abortParsing()
            return
        }
        stack.append(S3XMLElement(name: elementName))
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        stack.last?.text += string
    }

    func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
        stack.last?.text += String(decoding: CDATABlock, as: UTF8.self)
    }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName qName: String?) {
        guard let element = stack.popLast() else { return }
        if let parent = stack.last {
            parent.children.append(element)
        } else {
            root = element
        }
    }
}

/// What S3 answers, parsed with FoundationXML's XMLParser.
enum S3XML {
    /// The document's root element, or nil when the bytes are not well-formed XML.
    static func parse(_ bytes: [UInt8]) -> S3XMLElement? {
        guard !bytes.isEmpty else { return nil }
        // S3 answers in UTF-8. Anything else is not an answer, and FoundationXML traps (a crash
        // of pgbackd) on an element name that is not valid UTF-8, which libxml2 hands over as it
        // is: `<\u{E2}\u{82}Key>` from a broken or hostile endpoint killed the process.
        guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
        // Nor do they hold processing instructions beyond the leading XML declaration, and
        // FoundationXML crashes (strlen of NULL) on one without data, such as `<?xm?>`.
        guard processingInstructions(bytes) == 0 else { return nil }
        let parser = XMLParser(data: Data(bytes))
        let builder = S3XMLTreeBuilder()
        parser.delegate = builder
        parser.shouldProcessNamespaces = false
        parser.shouldResolveExternalEntities = false
        guard parser.parse(), !builder.tooDeep else { return nil }
        return builder.root
    }

    /// How many `<?` the document holds beyond a leading `<?xml …?>` declaration.
    static func processingInstructions(_ bytes: [UInt8]) -> Int {
        var count = 0, index = 0
        let open: [UInt8] = [0x3C, 0x3F]
        while index + 1 < bytes.count {
            if bytes[index] == open[0], bytes[index + 1] == open[1] { count += 1 }
            index += 1
        }
        // The declaration: first in the document (after a byte order mark), `<?xml` and a space.
        var start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        while start < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start]) { start += 1 }
        let declaration = Array("<?xml".utf8)
        if bytes.count > start + declaration.count, bytes[start..<start + declaration.count].elementsEqual(declaration),
           [0x20, 0x09, 0x0A, 0x0D].contains(bytes[start + declaration.count]) {
            count -= 1
        }
        return count
    }

    /// `<Error><Code>…</Code><Message>…</Message>…</Error>`.
    struct ErrorBody: Sendable, Equatable {
        var code: String
        var message: String?
        var bucketName: String?
        /// The region a bucket really is in (AuthorizationHeaderMalformed, PermanentRedirect).
        var region: String?
        var requestID: String?
        /// In an InvalidRange error: the object's size.
        var actualObjectSize: Int64?
    }

    static func errorBody(_ bytes: [UInt8]) -> ErrorBody? {
        // An empty code is no code: the status then names the failure.
        guard let root = parse(bytes), root.name == "Error", let code = root.string("Code"), !code.isEmpty else { return nil }
        return ErrorBody(
            code: code,
            message: root.string("Message"),
            bucketName: root.string("BucketName"),
            region: root.string("Region"),
            requestID: root.string("RequestId"),
            actualObjectSize: root.string("ActualObjectSize").flatMap { Int64($0) }
        )
    }

    struct ListObjectsPage: Sendable, Equatable {
        /// Keys as stored in the bucket (root prefix included).
        var objects: [ObjectInfo]
        var isTruncated: Bool
        var nextContinuationToken: String?
    }

    static func listObjectsV2(_ bytes: [UInt8]) -> ListObjectsPage? {
        guard let root = parse(bytes), root.name == "ListBucketResult" else { return nil }
        var objects: [ObjectInfo] = []
        for entry in root.children("Contents") {
            guard let key = entry.string("Key"), let size = entry.string("Size").flatMap({ Int64($0) }) else { return nil }
            objects.append(ObjectInfo(key: key, size: size, lastModified: entry.string("LastModified").flatMap(parseISO8601)))
        }
        let token = root.string("NextContinuationToken")
        return ListObjectsPage(
            objects: objects,
            isTruncated: root.string("IsTruncated") == "true",
            nextContinuationToken: token?.isEmpty == true ? nil : token
        )
    }

    struct MultipartUploadsPage: Sendable, Equatable {
        var uploads: [S3IncompleteUpload]
        var isTruncated: Bool
        var nextKeyMarker: String?
        var nextUploadIDMarker: String?
    }

    static func listMultipartUploads(_ bytes: [UInt8]) -> MultipartUploadsPage? {
        guard let root = parse(bytes), root.name == "ListMultipartUploadsResult" else { return nil }
        var uploads: [S3IncompleteUpload] = []
        for entry in root.children("Upload") {
            guard let key = entry.string("Key"), let id = entry.string("UploadId") else { return nil }
            uploads.append(S3IncompleteUpload(key: key, uploadID: id, initiated: entry.string("Initiated").flatMap(parseISO8601)))
        }
        func nonEmpty(_ value: String?) -> String? { value?.isEmpty == false ? value : nil }
        return MultipartUploadsPage(
            uploads: uploads,
            isTruncated: root.string("IsTruncated") == "true",
            nextKeyMarker: nonEmpty(root.string("NextKeyMarker")),
            nextUploadIDMarker: nonEmpty(root.string("NextUploadIdMarker"))
        )
    }

    static func initiateMultipartUpload(_ bytes: [UInt8]) -> String? {
        guard let root = parse(bytes), root.name == "InitiateMultipartUploadResult",
            let id = root.string("UploadId"), !id.isEmpty
        else { return nil }
        return id
    }

    enum CompleteResult: Sendable, Equatable {
        case completed(eTag: String?)
        /// S3 may answer 200 and still fail: the error is then in the body.
        case failed(ErrorBody)
    }

    static func completeMultipartUpload(_ bytes: [UInt8]) -> CompleteResult? {
        guard let root = parse(bytes) else { return nil }
        switch root.name {
        // moto names the root CompleteMultipartUploadResponse.
        case "CompleteMultipartUploadResult", "CompleteMultipartUploadResponse": return .completed(eTag: root.string("ETag"))
        case "Error": return errorBody(bytes).map(CompleteResult.failed)
        default: return nil
        }
    }

    /// The CompleteMultipartUpload request body.
    static func completeMultipartUploadBody(parts: [(number: Int, eTag: String)]) -> [UInt8] {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts.sorted(by: { $0.number < $1.number }) {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(escape(part.eTag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        return Array(xml.utf8)
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }

    /// `2026-11-25T10:09:32.000Z` (fractional seconds optional).
    static func parseISO8601(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }

    /// An HTTP date, `Wed, 25 Nov 2026 10:09:32 GMT` (the form S3 sends in Last-Modified).
    static func parseHTTPDate(_ text: String) -> Date? {
        let fields = text.split(separator: " ")
        guard fields.count == 6, let day = Int(fields[1]), let year = Int(fields[3]) else { return nil }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard let month = months.firstIndex(of: String(fields[2])) else { return nil }
        let time = fields[4].split(separator: ":").compactMap { Int($0) }
        guard time.count == 3 else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: DateComponents(year: year, month: month + 1, day: day, hour: time[0], minute: time[1], second: time[2]))
    }
}
