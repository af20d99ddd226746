import Foundation

/// Builds request URLs, the Host header and the canonical URI for one bucket.
struct S3Addressing: Sendable {
    let scheme: String
    /// As it goes into a URL: an IPv6 address in brackets.
    let host: String
    let port: Int?
    /// The endpoint's own path without a trailing slash ("" for none), kept in front of requests.
    let basePath: String
    let bucket: String
    let style: S3Configuration.URIStyle

    struct Target: Sendable {
        /// The full URL handed to libcurl.
        var url: String
        /// The Host header, sent and signed.
        var hostHeader: String
        var canonicalURI: String
        var canonicalQuery: String
    }

    init(configuration: S3Configuration) throws {
        let endpoint = configuration.endpoint
        guard let components = URLComponents(url: endpoint, resolvingAgainstBaseURL: false),
            let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            var host = components.host, !host.isEmpty
        else {
            throw StorageError(.invalidArgument, message: "S3 endpoint '\(configuration.endpointDescription)' is not an http:// or https:// URL with a host: fix repository.s3.endpoint")
        }
        guard !configuration.bucket.isEmpty else {
            throw StorageError(.invalidArgument, message: "no S3 bucket configured: set repository.s3.bucket")
        }
        if host.contains(":"), !host.hasPrefix("[") { host = "[\(host)]" }
        self.scheme = scheme
        self.host = host
        self.port = components.port
        var path = components.percentEncodedPath
        while path.hasSuffix("/") { path.removeLast() }
        self.basePath = path
        self.bucket = configuration.bucket
        self.style = configuration.uriStyle
    }

    var defaultPort: Int { scheme == "https" ? 443 : 80 }

    /// `host[:port]` for the bucket, as sent in the Host header.
    var hostHeader: String {
        let name = style == .virtualHosted ? "\(bucket).\(host)" : host
        if let port, port != defaultPort { return "\(name):\(port)" }
        return name
    }

    /// The request path for an object (full key, prefix included) or, with nil, the bucket.
    func path(key: String?) -> String {
        var path = basePath
        if style == .path { path += "/" + AWSPercentEncoding.encode(bucket, keepSlash: false) }
        if let key {
            path += "/" + AWSPercentEncoding.encode(key, keepSlash: true)
        } else if style == .virtualHosted {
            path += "/"
        }
        return path.isEmpty ? "/" : path
    }

    func target(key: String?, query: [QueryItem] = []) -> Target {
        let path = path(key: key)
        let wire = QueryItem.wireQuery(query)
        let hostHeader = hostHeader
        let url = "\(scheme)://\(hostHeader)\(path)\(wire.isEmpty ? "" : "?" + wire)"
        // Sent exactly as signed: the canonical URI is the path, the canonical query the wire query.
        return Target(url: url, hostHeader: hostHeader, canonicalURI: path, canonicalQuery: wire)
    }
}
