import Foundation

/// Everything ``S3Storage`` needs to reach one bucket. The secret never appears in
/// ``description``, ``debugDescription`` or a `Mirror` (so not in `dump` or string interpolation).
public struct S3Configuration: Sendable {
    /// How the bucket is named in a request URL.
    public enum URIStyle: String, Sendable, CaseIterable {
        /// `https://endpoint/bucket/key`: works with every S3-compatible server (MinIO, Ceph, moto).
        case path
        /// `https://bucket.endpoint/key`: AWS's preferred form; needs DNS for `bucket.endpoint`
        /// and, over TLS, a bucket name without dots.
        case virtualHosted
    }

    /// The service URL, e.g. `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:9000`.
    /// A path after the host is kept in front of every request path.
    public var endpoint: URL
    public var bucket: String
    /// The SigV4 signing region, e.g. `us-east-1`.
    public var region: String
    /// Key prefix inside the bucket (`pgbackd/main`), joined to keys with `/`; empty for the
    /// bucket's root. Leading and trailing slashes are ignored.
    public var prefix: String
    /// Default ``URIStyle/path``.
    public var uriStyle: URIStyle
    public var accessKeyID: String
    /// Never logged, never in an error message or a description.
    public var secretAccessKey: String
    /// Verify the server's certificate and host name. Default true; false only for test servers.
    public var verifyTLS: Bool
    /// A PEM bundle of CA certificates to verify the server with, instead of the system's.
    public var caFile: String?
    /// Size of each multipart part and the single-PUT threshold (objects of a known size up to
    /// 16 MiB are one PUT whatever this is). Default 8 MiB (``defaultPartSize``), at least 5 MiB
    /// (smaller values are raised to 5 MiB). Grown per upload so 10,000 parts always suffice.
    public var partSize: Int
    /// Parts uploaded at once per upload. Default 2 (``defaultParallelParts``). Memory per upload
    /// is at most `partSize × (parallelParts + 1)`.
    public var parallelParts: Int
    /// Retries after the first attempt on 5xx, 429, timeouts and connection failures. Default 5.
    public var maxRetries: Int
    /// Back-off before retry n is random in `0 ... min(retryMaxDelay, retryBaseDelay × 2ⁿ)`
    /// ("full jitter"). Defaults 200 ms and 20 s.
    public var retryBaseDelay: Duration
    public var retryMaxDelay: Duration
    /// Time allowed to open a connection (TCP + TLS). Default 10 s.
    public var connectTimeout: Duration
    /// A transfer slower than `lowSpeedLimit` bytes/s for `lowSpeedTime` is dropped and retried
    /// (GETs resume where they stopped). Defaults 1,024 bytes/s for 60 s.
    public var lowSpeedLimit: Int
    public var lowSpeedTime: Duration
    /// Keys per ListObjectsV2 page (S3 caps it at 1,000). Default 1,000.
    public var listPageSize: Int

    /// 8 MiB, not 16 (issue #17), as the AWS CLI's default: a backup's upload then holds at most
    /// 24 MiB of parts (8 MiB × (2 + 1)) instead of 80 (16 MiB × (4 + 1)); an S3 base backup of
    /// the 200k-entry Daylog cluster peaked at 111–114 MiB instead of 136–151 with this alone
    /// (80–81 MiB with ProcessMemory's allocator settings). WAL segments stay one PUT
    /// (``S3PartSizer/singlePutSize``).
    public static let defaultPartSize = 8 << 20
    /// 2, not 4 (issue #17): two parts in flight already outpace the compressor feeding them (a
    /// base backup stores about 15 MB/s on two cores; one part in flight measured no slower to
    /// moto), and each part in flight is a part held in memory.
    public static let defaultParallelParts = 2

    public init(
        endpoint: URL,
        bucket: String,
        region: String,
        accessKeyID: String,
        secretAccessKey: String,
        prefix: String = "",
        uriStyle: URIStyle = .path,
        verifyTLS: Bool = true,
        caFile: String? = nil,
        partSize: Int = S3Configuration.defaultPartSize,
        parallelParts: Int = S3Configuration.defaultParallelParts,
        maxRetries: Int = 5,
        retryBaseDelay: Duration = .milliseconds(200),
        retryMaxDelay: Duration = .seconds(20),
        connectTimeout: Duration = .seconds(10),
        lowSpeedLimit: Int = 1024,
        lowSpeedTime: Duration = .seconds(60),
        listPageSize: Int = 1000
    ) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.prefix = prefix
        self.uriStyle = uriStyle
        self.verifyTLS = verifyTLS
        self.caFile = caFile
        self.partSize = partSize
        self.parallelParts = parallelParts
        self.maxRetries = maxRetries
        self.retryBaseDelay = retryBaseDelay
        self.retryMaxDelay = retryMaxDelay
        self.connectTimeout = connectTimeout
        self.lowSpeedLimit = lowSpeedLimit
        self.lowSpeedTime = lowSpeedTime
        self.listPageSize = listPageSize
    }

    /// The key prefix as it is put in front of keys: empty, or ending in one `/`.
    var rootPrefix: String {
        let trimmed = prefix.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
        return trimmed.isEmpty ? "" : trimmed + "/"
    }

    /// The endpoint as it may be shown: scheme, host, port and path, no user info or query.
    var endpointDescription: String {
        guard var components = URLComponents(url: endpoint, resolvingAgainstBaseURL: false) else {
            return "(invalid endpoint)"
        }
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        return components.string ?? "(invalid endpoint)"
    }
}

extension S3Configuration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "S3Configuration(endpoint: \(endpointDescription), bucket: \(bucket), region: \(region), "
            + "prefix: \(rootPrefix.isEmpty ? "(none)" : rootPrefix), uriStyle: \(uriStyle.rawValue), "
            + "accessKeyID: \(accessKeyID), secretAccessKey: <redacted>, verifyTLS: \(verifyTLS), "
            + "caFile: \(caFile ?? "(system)"), partSize: \(partSize), parallelParts: \(parallelParts), "
            + "maxRetries: \(maxRetries))"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "endpoint": endpointDescription,
            "bucket": bucket,
            "region": region,
            "prefix": prefix,
            "uriStyle": uriStyle,
            "accessKeyID": accessKeyID,
            "secretAccessKey": "<redacted>",
            "verifyTLS": verifyTLS,
            "caFile": caFile as Any,
            "partSize": partSize,
            "parallelParts": parallelParts,
            "maxRetries": maxRetries,
            "retryBaseDelay": retryBaseDelay,
            "retryMaxDelay": retryMaxDelay,
            "connectTimeout": connectTimeout,
            "lowSpeedLimit": lowSpeedLimit,
            "lowSpeedTime": lowSpeedTime,
            "listPageSize": listPageSize,
        ])
    }
}
