import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The simulator's own certificate authority and a server certificate it issued for `localhost` and `127.0.0.1`,
/// made fresh at start. The CA is written to a PEM file so that Herald trusts it through `HERALD_CA_FILE` — the TLS
/// emulators (APNs over HTTP/2, FCM, every push API) are reached over real TLS without touching the system trust
/// store.
public struct TLSIdentity: Sendable {
    /// The CA certificate, PEM.
    public let caPEM: String
    let certificate: NIOSSLCertificate
    let privateKey: NIOSSLPrivateKey
    let caKey: P256.Signing.PrivateKey
    let caName: DistinguishedName

    public init() throws {
        let now = Date()
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("Herald")
            CommonName("Herald Simulator CA")
        }
        let ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey), notValidBefore: now - 3600,
            notValidAfter: now + 30 * 86_400, issuer: caName, subject: caName,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            }, issuerPrivateKey: .init(caKey))
        let serverKey = P256.Signing.PrivateKey()
        let server = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(serverKey.publicKey), notValidBefore: now - 3600,
            notValidAfter: now + 30 * 86_400, issuer: caName, subject: try DistinguishedName { CommonName("localhost") },
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
            }, issuerPrivateKey: .init(caKey))
        caPEM = try ca.serializeAsPEM().pemString
        self.caKey = caKey
        self.caName = caName
        certificate = try NIOSSLCertificate(bytes: Array(server.serializeAsPEM().pemString.utf8), format: .pem)
        privateKey = try NIOSSLPrivateKey(bytes: Array(serverKey.pemRepresentation.utf8), format: .pem)
    }

    /// Server TLS offering `h2` and `http/1.1`.
    public var serverConfiguration: TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(certificate)], privateKey: .privateKey(privateKey))
        configuration.applicationProtocols = ["h2", "http/1.1"]
        return configuration
    }

    /// Server TLS that requires a client certificate issued by this CA (APNs certificate authentication).
    public var mutualServerConfiguration: TLSConfiguration {
        var configuration = serverConfiguration
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([try! NIOSSLCertificate(bytes: Array(caPEM.utf8), format: .pem)])
        return configuration
    }

    /// A client certificate and key (PEM) issued by this CA with the subject `CN=<commonName>` — what Apple issues as
    /// an APNs certificate ("Apple Push Services: <bundle id>").
    public func issueClientCertificate(commonName: String) throws -> (certificatePEM: String, privateKeyPEM: String) {
        let now = Date()
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey), notValidBefore: now - 3600,
            notValidAfter: now + 30 * 86_400, issuer: caName, subject: try DistinguishedName { CommonName(commonName) },
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
            }, issuerPrivateKey: .init(caKey))
        return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
    }

    /// The common name of a DER certificate.
    static func commonName(der: [UInt8]) -> String? {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == ASN1ObjectIdentifier.RDNAttributeType.commonName {
                let text = String(describing: attribute.value)
                return text
            }
        }
        return nil
    }

    /// Writes the CA certificate to `path` (for `HERALD_CA_FILE`).
    public func writeCA(to path: String) throws {
        try Data(caPEM.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
