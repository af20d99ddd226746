import Foundation
import Testing

@testable import ObjectStorage

@Suite struct S3AddressingTests {
    func configuration(_ endpoint: String, style: S3Configuration.URIStyle = .path, prefix: String = "") -> S3Configuration {
        S3Configuration(
            endpoint: URL(string: endpoint)!, bucket: "my-bucket", region: "us-east-1",
            accessKeyID: "AKID", secretAccessKey: "SECRET/+value", prefix: prefix, uriStyle: style
        )
    }

    @Test func pathStyle() throws {
        let addressing = try S3Addressing(configuration: configuration("http://127.0.0.1:9571"))
        let target = addressing.target(key: "backups/a b/c+d=e.gz")
        #expect(target.url == "http://127.0.0.1:9571/my-bucket/backups/a%20b/c%2Bd%3De.gz")
        #expect(target.hostHeader == "127.0.0.1:9571")
        #expect(target.canonicalURI == "/my-bucket/backups/a%20b/c%2Bd%3De.gz")
        #expect(addressing.target(key: nil, query: [QueryItem("list-type", "2")]).url == "http://127.0.0.1:9571/my-bucket?list-type=2")
    }

    @Test func virtualHostedStyle() throws {
        let addressing = try S3Addressing(configuration: configuration("https://s3.eu-central-1.amazonaws.com", style: .virtualHosted))
        let target = addressing.target(key: "wal/00000001/000000010000000000000001.gz")
        #expect(target.url == "https://my-bucket.s3.eu-central-1.amazonaws.com/wal/00000001/000000010000000000000001.gz")
        #expect(target.hostHeader == "my-bucket.s3.eu-central-1.amazonaws.com")
        #expect(addressing.target(key: nil, query: [QueryItem("uploads")]).url == "https://my-bucket.s3.eu-central-1.amazonaws.com/?uploads=")
    }

    @Test func defaultPortsAreLeftOutAndOthersKept() throws {
        #expect(try S3Addressing(configuration: configuration("https://minio.local:443")).hostHeader == "minio.local")
        #expect(try S3Addressing(configuration: configuration("http://minio.local:80")).hostHeader == "minio.local")
        #expect(try S3Addressing(configuration: configuration("https://minio.local:9000")).hostHeader == "minio.local:9000")
        #expect(try S3Addressing(configuration: configuration("http://minio.local:9000", style: .virtualHosted)).hostHeader == "my-bucket.minio.local:9000")
    }

    @Test func endpointPathIsKept() throws {
        let addressing = try S3Addressing(configuration: configuration("http://gateway.local:8080/s3/"))
        #expect(addressing.target(key: "k").url == "http://gateway.local:8080/s3/my-bucket/k")
    }

    @Test func ipv6Host() throws {
        let addressing = try S3Addressing(configuration: configuration("http://[::1]:9000"))
        #expect(addressing.target(key: "k").url == "http://[::1]:9000/my-bucket/k")
    }

    @Test func keysAreEscapedOnceKeepingSlashes() throws {
        let addressing = try S3Addressing(configuration: configuration("http://h"))
        #expect(addressing.path(key: "é/~a_b-c.d/%") == "/my-bucket/%C3%A9/~a_b-c.d/%25")
    }

    /// What is signed is what is sent: the canonical URI and query are the request target's own.
    @Test func canonicalFormIsTheRequestTarget() throws {
        let addressing = try S3Addressing(configuration: configuration("http://h"))
        let target = addressing.target(key: "a b/c+d", query: [QueryItem("prefix", "x/y"), QueryItem("delimiter", "/")])
        #expect(target.url == "http://h/my-bucket/a%20b/c%2Bd?delimiter=%2F&prefix=x%2Fy")
        #expect(target.canonicalURI == "/my-bucket/a%20b/c%2Bd")
        #expect(target.canonicalQuery == "delimiter=%2F&prefix=x%2Fy")
    }

    @Test(arguments: ["ftp://host", "not a url", "http://"])
    func badEndpointsAreRejected(endpoint: String) {
        guard let url = URL(string: endpoint) else { return }
        let configuration = S3Configuration(endpoint: url, bucket: "b", region: "r", accessKeyID: "AKID", secretAccessKey: "TOPSECRET")
        let error = #expect(throws: StorageError.self) { try S3Storage(configuration: configuration) }
        #expect(error?.code == .invalidArgument)
        #expect(error?.message.contains("repository.s3.endpoint") == true)
        #expect(error.map { "\($0)" }?.contains("TOPSECRET") == false)
    }

    @Test func rootPrefixIsNormalized() {
        #expect(configuration("http://h", prefix: "").rootPrefix == "")
        #expect(configuration("http://h", prefix: "/").rootPrefix == "")
        #expect(configuration("http://h", prefix: "pgbackd").rootPrefix == "pgbackd/")
        #expect(configuration("http://h", prefix: "/pgbackd//main/").rootPrefix == "pgbackd/main/")
    }

    @Test func endpointDescriptionDropsUserInfo() {
        let configuration = configuration("https://user:pw@s3.example.com:9000/base?x=1")
        #expect(configuration.endpointDescription == "https://s3.example.com:9000/base")
    }
}
