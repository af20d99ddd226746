import Foundation
import Testing

import CurlHTTP
@testable import ObjectStorage

/// The signer against AWS's published examples: the SigV4 test suite (service "service") and
/// the S3 API reference's header-based-auth examples; then the full request pipeline against
/// signatures computed by botocore (the reference AWS SDK) for the request shapes we send.
@Suite struct S3SigV4Tests {
    let suite = SigV4Signer(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region: "us-east-1", service: "service"
    )
    let s3Docs = SigV4Signer(
        accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        region: "us-east-1", service: "s3"
    )
    let suiteDate = "20150830T123600Z"
    let docsDate = "20130524T000000Z"

    func suiteSignature(method: String, query: [QueryItem] = []) -> String {
        suite.sign(
            method: method, canonicalURI: "/", canonicalQuery: QueryItem.wireQuery(query),
            headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", suiteDate)],
            payloadHash: SigV4Signer.emptyPayloadHash, amzDate: suiteDate
        ).signature
    }

    @Test func getVanilla() {
        let signed = suite.sign(
            method: "GET", canonicalURI: "/", canonicalQuery: "",
            headers: [("Host", "example.amazonaws.com"), ("X-Amz-Date", suiteDate)],
            payloadHash: SigV4Signer.emptyPayloadHash, amzDate: suiteDate
        )
        #expect(signed.signature == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        #expect(signed.authorization == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    }

    @Test func getVanillaQueryOrderKeyCase() {
        let query = [QueryItem("Param2", "value2"), QueryItem("Param1", "value1")]
        #expect(QueryItem.wireQuery(query) == "Param1=value1&Param2=value2")
        #expect(suiteSignature(method: "GET", query: query) == "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
    }

    @Test func getVanillaQueryOrderValue() {
        let query = [QueryItem("Param1", "value2"), QueryItem("Param1", "value1")]
        #expect(QueryItem.wireQuery(query) == "Param1=value1&Param1=value2")
        #expect(suiteSignature(method: "GET", query: query) == "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694")
    }

    @Test func postVanilla() {
        #expect(suiteSignature(method: "POST") == "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
    }

    @Test func s3DocsGetObjectWithRange() {
        let signed = s3Docs.sign(
            method: "GET", canonicalURI: "/test.txt", canonicalQuery: "",
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
                ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash), ("x-amz-date", docsDate),
            ],
            payloadHash: SigV4Signer.emptyPayloadHash, amzDate: docsDate
        )
        #expect(signed.canonicalRequest == """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signed.stringToSign == """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        #expect(signed.signature == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    @Test func s3DocsPutObject() {
        let payload = Array("Welcome to Amazon S3.".utf8)
        let hash = SigV4Signer.payloadHash(payload)
        #expect(hash == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let signed = s3Docs.sign(
            method: "PUT", canonicalURI: "/" + AWSPercentEncoding.encode("test$file.text", keepSlash: true), canonicalQuery: "",
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-date", docsDate), ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", hash),
            ],
            payloadHash: hash, amzDate: docsDate
        )
        #expect(signed.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n\n"))
        #expect(signed.signature == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    @Test func s3DocsGetBucketLifecycleBareQueryName() {
        let query = [QueryItem("lifecycle")]
        #expect(QueryItem.wireQuery(query) == "lifecycle=")
        let signed = s3Docs.sign(
            method: "GET", canonicalURI: "/", canonicalQuery: QueryItem.wireQuery(query),
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash), ("x-amz-date", docsDate),
            ],
            payloadHash: SigV4Signer.emptyPayloadHash, amzDate: docsDate
        )
        #expect(signed.signature == "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    @Test func s3DocsListObjects() {
        let query = [QueryItem("prefix", "J"), QueryItem("max-keys", "2")]
        let signed = s3Docs.sign(
            method: "GET", canonicalURI: "/", canonicalQuery: QueryItem.wireQuery(query),
            headers: [
                ("Host", "examplebucket.s3.amazonaws.com"),
                ("x-amz-content-sha256", SigV4Signer.emptyPayloadHash), ("x-amz-date", docsDate),
            ],
            payloadHash: SigV4Signer.emptyPayloadHash, amzDate: docsDate
        )
        #expect(signed.signature == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    @Test func amzDateIsUTC() {
        #expect(SigV4Signer.amzDate(Date(timeIntervalSince1970: 1_440_938_160)) == "20150830T123600Z")
    }

    @Test func headerValuesAreTrimmedAndCollapsed() {
        #expect(SigV4Signer.trimmedHeaderValue("  a   b  c ") == "a b c")
    }

    // MARK: the whole pipeline (addressing + signing) against botocore

    func client() throws -> S3Client {
        let configuration = S3Configuration(
            endpoint: URL(string: "http://127.0.0.1:9571")!, bucket: "pgbackd-test", region: "eu-central-1",
            accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )
        return try S3Client(configuration: configuration)
    }

    /// 2026-11-25T10:00:00Z
    let pipelineDate = Date(timeIntervalSince1970: 1_795_600_800)

    func signature(of options: CurlTransferOptions) -> String? {
        options.headers.first { $0.hasPrefix("Authorization: ") }?.components(separatedBy: "Signature=").last
    }

    @Test func listObjectsV2WithEscapedPrefixAndToken() throws {
        #expect(SigV4Signer.amzDate(pipelineDate) == "20261125T100000Z")
        let request = S3Client.Request(operation: "ListObjectsV2", method: "GET", query: [
            QueryItem("list-type", "2"), QueryItem("prefix", "backups/main x/"), QueryItem("max-keys", "2"),
            QueryItem("continuation-token", "ab+c/d=="),
        ])
        let options = try client().transferOptions(for: request, payloadHash: SigV4Signer.emptyPayloadHash, now: pipelineDate)
        #expect(options.url == "http://127.0.0.1:9571/pgbackd-test?continuation-token=ab%2Bc%2Fd%3D%3D&list-type=2&max-keys=2&prefix=backups%2Fmain%20x%2F")
        #expect(options.headers.contains("Host: 127.0.0.1:9571"))
        #expect(options.headers.contains("x-amz-date: 20261125T100000Z"))
        #expect(signature(of: options) == "1d37c040c033a40a06b4f0e2cf37783436d71a49a93747b6377f66084ea4eae5")
    }

    @Test func createMultipartUploadBareUploads() throws {
        let request = S3Client.Request(operation: "CreateMultipartUpload", method: "POST", bucketKey: "backups/a b/base.tar.gz", query: [QueryItem("uploads")])
        let options = try client().transferOptions(for: request, payloadHash: SigV4Signer.emptyPayloadHash, now: pipelineDate)
        #expect(options.url == "http://127.0.0.1:9571/pgbackd-test/backups/a%20b/base.tar.gz?uploads=")
        #expect(signature(of: options) == "f1c8a898ae15ba9b7ae2993cc203b93a5c5a2a75e941ca44dfb6f87391108b7c")
    }

    @Test func uploadPartWithSignedPayload() throws {
        let body = Array("hello".utf8)
        let request = S3Client.Request(
            operation: "UploadPart", method: "PUT", bucketKey: "backups/base.tar.gz",
            query: [QueryItem("uploadId", "VXBsb2FkSUQ.x_y-z~"), QueryItem("partNumber", "1")], body: body
        )
        let options = try client().transferOptions(for: request, payloadHash: SigV4Signer.payloadHash(body), now: pipelineDate)
        #expect(options.url == "http://127.0.0.1:9571/pgbackd-test/backups/base.tar.gz?partNumber=1&uploadId=VXBsb2FkSUQ.x_y-z~")
        #expect(options.headers.contains("x-amz-content-sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"))
        #expect(options.headers.contains("Content-Type: application/octet-stream"))
        #expect(signature(of: options) == "6c9ee6467efecb9e7e60e77f27749505ea300836b526e69ad3db1b8d77da0263")
    }

    /// A key with a space and sub-delimiters: signed over the path exactly as sent (each escape
    /// once, `~` and `/` kept), as AWS and a moto that checks the raw request target do.
    @Test func putObjectWithEscapedKey() throws {
        let body = Array("hello".utf8)
        let put = S3Client.Request(operation: "PutObject", method: "PUT", bucketKey: "a b/x+y.txt", body: body)
        let putOptions = try client().transferOptions(for: put, payloadHash: SigV4Signer.payloadHash(body), now: pipelineDate)
        #expect(putOptions.url == "http://127.0.0.1:9571/pgbackd-test/a%20b/x%2By.txt")
        #expect(signature(of: putOptions) == "3245c5ee3aa32da88789fd2871496827d40b8aa1c62b7c1594e5de5a4afdeff8")

        let odd = S3Client.Request(operation: "PutObject", method: "PUT", bucketKey: "backups/a b/x+y=z:(1)!*'é~.txt", body: body)
        let oddOptions = try client().transferOptions(for: odd, payloadHash: SigV4Signer.payloadHash(body), now: pipelineDate)
        #expect(oddOptions.url == "http://127.0.0.1:9571/pgbackd-test/backups/a%20b/x%2By%3Dz%3A%281%29%21%2A%27%C3%A9~.txt")
        #expect(signature(of: oddOptions) == "40197f99c3b4cd9130610ca7f3754ef29b145757d1e46d3fd7872f42b9e71de7")
    }

    @Test func percentEncoding() {
        #expect(AWSPercentEncoding.encode("AZaz09-_.~", keepSlash: false) == "AZaz09-_.~")
        #expect(AWSPercentEncoding.encode("a/b c+d=e&f%", keepSlash: false) == "a%2Fb%20c%2Bd%3De%26f%25")
        #expect(AWSPercentEncoding.encode("a/b c", keepSlash: true) == "a/b%20c")
        #expect(AWSPercentEncoding.encode("é", keepSlash: true) == "%C3%A9")
    }
}
