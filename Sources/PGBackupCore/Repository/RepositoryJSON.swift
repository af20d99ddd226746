import Foundation

/// The JSON every repository document (manifest, marker, drill report) is written and read with:
/// snake_case keys, sorted for stable diffs, and times in ISO 8601 UTC with milliseconds, so a
/// sub-second backup still shows a duration. Readers also take times without a fraction.
enum RepositoryJSON {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(withFraction))
        }
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            if let date = try? withFraction.parse(text) { return date }
            if let date = try? Date.ISO8601FormatStyle().parse(text) { return date }
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 time: \(text)")
        }
        return decoder
    }

    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
}

extension RepositoryJSON {
    /// A reading failure in the document's own terms, for error messages: where (the keys as the
    /// file spells them, `artifacts[1].raw_size`) and what is wrong, not the decoder's dump
    /// (`DecodingError.keyNotFound(CodingKeys(stringValue: …))`).
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) is missing"
        case .valueNotFound(_, let context):
            return "\(path(context.codingPath)) is null"
        case .typeMismatch(_, let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                // The JSON syntax error, when the decoder gives a short reason ("Unexpected character … around line 3, column 7").
                let reason: String = context.underlyingError.map { String(describing: $0) } ?? ""
                let short = !reason.isEmpty && reason.count < 300 && !reason.contains("Domain=")
                return "not valid JSON" + (short ? " (\(reason))" : "")
            }
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "cannot be read"
        }
    }

    /// `artifacts[1].raw_size`: coding keys back in the file's snake_case.
    private static func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                let name = key.stringValue
                let isSwiftName = name.first?.isLowercase == true && name.allSatisfy { $0.isLetter || $0.isNumber }
                let spelled = isSwiftName ? name.reduce(into: "") { result, character in
                    result += character.isUppercase ? "_" + character.lowercased() : String(character)
                } : name
                text += (text.isEmpty ? "" : ".") + spelled
            }
        }
        return text.isEmpty ? "the document" : text
    }
}
