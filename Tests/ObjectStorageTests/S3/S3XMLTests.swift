import Foundation
import Testing

@testable import ObjectStorage

@Suite struct S3XMLTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func listObjectsV2Page() throws {
        let page = try #require(S3XML.listObjectsV2(bytes("""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>bucket</Name><Prefix>pg/backups/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
              <IsTruncated>true</IsTruncated>
              <Contents><Key>pg/backups/a&amp;b.gz</Key><LastModified>2026-11-25T10:09:32.000Z</LastModified>
                <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>
              <Contents><Key>pg/backups/b.gz</Key><LastModified>2026-11-25T10:09:33Z</LastModified><Size>1234567890123</Size></Contents>
              <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
            </ListBucketResult>
            """)))
        #expect(page.isTruncated)
        #expect(page.nextContinuationToken == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        #expect(page.objects.map(\.key) == ["pg/backups/a&b.gz", "pg/backups/b.gz"])
        #expect(page.objects.map(\.size) == [0, 1_234_567_890_123])
        #expect(page.objects[0].lastModified == Date(timeIntervalSince1970: 1_795_601_372))
        #expect(page.objects[1].lastModified == Date(timeIntervalSince1970: 1_795_601_373))
    }

    @Test func lastListObjectsV2Page() throws {
        let page = try #require(S3XML.listObjectsV2(bytes("""
            <ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>
            """)))
        #expect(!page.isTruncated)
        #expect(page.objects.isEmpty)
        #expect(page.nextContinuationToken == nil)
    }

    @Test func notAListing() {
        #expect(S3XML.listObjectsV2(bytes("<Error><Code>NoSuchBucket</Code></Error>")) == nil)
        #expect(S3XML.listObjectsV2(bytes("not xml <")) == nil)
        #expect(S3XML.listObjectsV2([]) == nil)
        #expect(S3XML.listObjectsV2(bytes("<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>")) == nil)
    }

    @Test func listMultipartUploads() throws {
        let page = try #require(S3XML.listMultipartUploads(bytes("""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
              <NextKeyMarker>pg/b.gz</NextKeyMarker><NextUploadIdMarker>xyz.2</NextUploadIdMarker>
              <MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
              <Upload><Key>pg/a.gz</Key><UploadId>abc.1</UploadId><Initiator><ID>x</ID></Initiator>
                <StorageClass>STANDARD</StorageClass><Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>
              <Upload><Key>pg/b.gz</Key><UploadId>xyz.2</UploadId><Initiated>2026-11-25T10:00:00.000Z</Initiated></Upload>
            </ListMultipartUploadsResult>
            """)))
        #expect(page.isTruncated)
        #expect(page.nextKeyMarker == "pg/b.gz")
        #expect(page.nextUploadIDMarker == "xyz.2")
        #expect(page.uploads == [
            S3IncompleteUpload(key: "pg/a.gz", uploadID: "abc.1", initiated: Date(timeIntervalSince1970: 1_289_422_113)),
            S3IncompleteUpload(key: "pg/b.gz", uploadID: "xyz.2", initiated: Date(timeIntervalSince1970: 1_795_600_800)),
        ])
    }

    @Test func emptyMarkersAreNil() throws {
        let page = try #require(S3XML.listMultipartUploads(bytes("""
            <ListMultipartUploadsResult><NextKeyMarker/><NextUploadIdMarker></NextUploadIdMarker><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>
            """)))
        #expect(page.nextKeyMarker == nil && page.nextUploadIDMarker == nil && page.uploads.isEmpty)
    }

    @Test func errorBody() throws {
        let body = try #require(S3XML.errorBody(bytes("""
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-central-1'</Message>
            <Region>eu-central-1</Region><RequestId>RID</RequestId><HostId>HID</HostId></Error>
            """)))
        #expect(body.code == "AuthorizationHeaderMalformed")
        #expect(body.region == "eu-central-1")
        #expect(body.requestID == "RID")
        #expect(body.message?.hasPrefix("The authorization header") == true)
        #expect(S3XML.errorBody(bytes("<ListBucketResult/>")) == nil)
    }

    @Test func initiateAndComplete() {
        #expect(S3XML.initiateMultipartUpload(bytes("""
            <InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2Fk.ID</UploadId></InitiateMultipartUploadResult>
            """)) == "VXBsb2Fk.ID")
        #expect(S3XML.initiateMultipartUpload(bytes("<InitiateMultipartUploadResult><UploadId/></InitiateMultipartUploadResult>")) == nil)
        #expect(S3XML.completeMultipartUpload(bytes("""
            <CompleteMultipartUploadResult><Location>x</Location><ETag>"3858f62230ac3c915f300c664312c11f-9"</ETag></CompleteMultipartUploadResult>
            """)) == .completed(eTag: "\"3858f62230ac3c915f300c664312c11f-9\""))
        // 200 with an error in the body.
        #expect(S3XML.completeMultipartUpload(bytes("<Error><Code>InternalError</Code><Message>try again</Message></Error>"))
            == .failed(S3XML.ErrorBody(code: "InternalError", message: "try again")))
    }

    @Test func completeBodyListsPartsInOrder() {
        let body = String(decoding: S3XML.completeMultipartUploadBody(parts: [(2, "\"b\""), (1, "\"a\"")]), as: UTF8.self)
        #expect(body == "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>")
    }

    @Test func httpDates() {
        #expect(S3XML.parseHTTPDate("Wed, 25 Nov 2026 10:00:00 GMT") == Date(timeIntervalSince1970: 1_795_600_800))
        #expect(S3XML.parseHTTPDate("yesterday") == nil)
    }

    @Test func contentRangeTotal() {
        #expect(S3Client.totalSize(contentRange: "bytes */1000") == 1000)
        #expect(S3Client.totalSize(contentRange: "bytes 0-9/1000") == 1000)
        #expect(S3Client.totalSize(contentRange: nil) == nil)
    }
}
