import Crypto
import Foundation
import Logging
import PostgresNIO
@testable import RedressServiceKit
import SwiftASN1
import Testing
import X509

/// Transport security, for real: a throw-away certificate authority and server certificate made
/// here, the test cluster switched to TLS with them, a role that may connect over TLS only — and
/// the services' own PostgreSQL settings (`REDRESS_PG_TLS`) against it.
@Suite(.serialized) struct PostgresTLSTests {
    struct Authority {
        let key = P256.Signing.PrivateKey()
        let name: DistinguishedName
        let certificate: Certificate

        init(_ commonName: String) throws {
            name = try DistinguishedName { CommonName(commonName) }
            let now = Date()
            certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: name, subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                    KeyUsage(keyCertSign: true)
                },
                issuerPrivateKey: .init(key))
        }

        /// A server certificate for this machine (127.0.0.1 and localhost) signed by this authority.
        func serverCertificate() throws -> (Certificate, P256.Signing.PrivateKey) {
            let serverKey = P256.Signing.PrivateKey()
            let now = Date()
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(serverKey.publicKey),
                notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: name,
                subject: try DistinguishedName { CommonName("localhost") },
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
                    try ExtendedKeyUsage([.serverAuth])
                },
                issuerPrivateKey: .init(key))
            return (certificate, serverKey)
        }
    }

    static func write(_ text: String, to path: String, owner: String? = nil, mode: Int = 0o644) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        var attributes: [FileAttributeKey: Any] = [.posixPermissions: mode]
        if let owner { attributes[.ownerAccountName] = owner; attributes[.groupOwnerAccountName] = owner }
        try FileManager.default.setAttributes(attributes, ofItemAtPath: path)
    }

    static func settings(tls: String, ca: String?) throws -> ServiceConfiguration.PostgresSettings {
        var env = ProcessInfo.processInfo.environment
        env["REDRESS_PG_USER"] = "redress_tls"
        env["REDRESS_PG_TLS"] = tls
        env["REDRESS_PG_TLS_CA"] = ca
        return try ServiceConfiguration.PostgresSettings.fromEnvironment(env)
    }

    /// Whether a connection with these settings opens, and if so whether it is encrypted.
    static func connect(_ settings: ServiceConfiguration.PostgresSettings) async -> Result<Bool, any Error> {
        do {
            let client = PostgresClient(configuration: try settings.clientConfiguration(), backgroundLogger: TestDatabase.logger)
            return try await withThrowingTaskGroup(of: Bool?.self) { group in
                group.addTask { await client.run(); return nil }
                group.addTask {
                    try await withThrowingTaskGroup(of: Bool.self) { inner in
                        inner.addTask {
                            for try await ssl in try await client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: TestDatabase.logger).decode(Bool.self) {
                                return ssl
                            }
                            return false
                        }
                        inner.addTask { try await Task.sleep(for: .seconds(10)); throw TestSetupError("no connection within 10 s") }
                        defer { inner.cancelAll() }
                        return try await inner.next()!
                    }
                }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let result { return .success(result) }
                }
                return .failure(TestSetupError("no result"))
            }
        } catch {
            return .failure(error)
        }
    }

    @Test func servicesConnectToAPostgreSQLThatRequiresTLSAndRefuseAServerTheirCADidNotSign() async throws {
        let authority = try Authority("Redress test CA")
        let stranger = try Authority("Someone else's CA")
        let (server, serverKey) = try authority.serverCertificate()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("redress-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory.path)
        let caFile = directory.appendingPathComponent("ca.pem").path
        let strangerFile = directory.appendingPathComponent("stranger.pem").path
        try Self.write(try authority.certificate.serializeAsPEM().pemString, to: caFile)
        try Self.write(try stranger.certificate.serializeAsPEM().pemString, to: strangerFile)
        // PostgreSQL reads its certificate and key as its own user, the key private to it.
        try Self.write(try server.serializeAsPEM().pemString, to: directory.appendingPathComponent("server.pem").path, owner: "postgres", mode: 0o644)
        try Self.write(serverKey.pemRepresentation, to: directory.appendingPathComponent("server.key").path, owner: "postgres", mode: 0o600)

        // As the cluster's superuser: TLS on with these files, and a role that may only connect over TLS.
        var admin = try ServiceConfiguration.PostgresSettings.fromEnvironment()
        admin.user = "postgres"
        let adminClient = PostgresClient(configuration: try admin.clientConfiguration(), backgroundLogger: TestDatabase.logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await adminClient.run() }
            defer { group.cancelAll() }
            var hbaFile = ""
            for try await path in try await adminClient.query("SHOW hba_file", logger: TestDatabase.logger).decode(String.self) { hbaFile = path }
            let hba = try String(contentsOfFile: hbaFile, encoding: .utf8)
            if !hba.contains("redress_tls") {
                try ("hostssl all redress_tls 127.0.0.1/32 trust\nhostnossl all redress_tls 127.0.0.1/32 reject\n" + hba)
                    .write(toFile: hbaFile, atomically: false, encoding: .utf8)
            }
            try await adminClient.query("DO $$ BEGIN CREATE ROLE redress_tls LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$", logger: TestDatabase.logger)
            let cert = directory.appendingPathComponent("server.pem").path, key = directory.appendingPathComponent("server.key").path
            try await adminClient.query("ALTER SYSTEM SET ssl = on", logger: TestDatabase.logger)
            try await adminClient.query("ALTER SYSTEM SET ssl_cert_file = \(unescaped: "'" + cert + "'")", logger: TestDatabase.logger)
            try await adminClient.query("ALTER SYSTEM SET ssl_key_file = \(unescaped: "'" + key + "'")", logger: TestDatabase.logger)
            try await adminClient.query("SELECT pg_reload_conf()", logger: TestDatabase.logger)
            try await Task.sleep(for: .milliseconds(500))
        }

        // verify-full with the CA that signed the server: connected, encrypted.
        let verified = await Self.connect(try Self.settings(tls: "verify-full", ca: caFile))
        #expect((try? verified.get()) == true, "verify-full with the right CA: \(verified)")
        // require: encrypted, though the server is not authenticated.
        let required = await Self.connect(try Self.settings(tls: "require", ca: nil))
        #expect((try? required.get()) == true, "require: \(required)")
        // verify-full with another CA: refused before a query is sent.
        let wrongCA = await Self.connect(try Self.settings(tls: "verify-full", ca: strangerFile))
        #expect((try? wrongCA.get()) == nil, "a server the CA did not sign must be refused: \(wrongCA)")
        // disable: the server refuses the role without TLS.
        let plain = await Self.connect(try Self.settings(tls: "disable", ca: nil))
        #expect((try? plain.get()) == nil, "the role may connect over TLS only: \(plain)")

        // A whole service host, configured from its environment, runs over TLS.
        var env = ProcessInfo.processInfo.environment
        env["REDRESS_PG_USER"] = "redress_tls"
        env["REDRESS_PG_TLS"] = "verify-full"
        env["REDRESS_PG_TLS_CA"] = caFile
        env["REDRESS_KAFKA_BOOTSTRAP"] = "127.0.0.1:1"
        let configuration = try ServiceConfiguration.fromEnvironment(service: "redress-surveys", defaultPort: 0, environment: env)
        let host = try ServiceHost(configuration: configuration, logger: TestDatabase.logger)
        let encrypted = try await withThrowingTaskGroup(of: Void.self) { group -> Int in
            group.addTask { await host.postgres.run() }
            defer { group.cancelAll() }
            return try await TestDatabase.count(host.postgres, "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl")
        }
        #expect(encrypted == 1, "the service's own connection is encrypted")
        // Refused at start, naming what to set.
        env["REDRESS_PG_TLS"] = "maybe"
        #expect(throws: ServiceConfiguration.Invalid.self) { try ServiceConfiguration.fromEnvironment(service: "redress-surveys", defaultPort: 0, environment: env) }
        env["REDRESS_PG_TLS"] = "require"
        #expect(throws: ServiceConfiguration.Invalid.self, "a CA without verify-full is a mistake") {
            try ServiceConfiguration.fromEnvironment(service: "redress-surveys", defaultPort: 0, environment: env)
        }
    }
}
