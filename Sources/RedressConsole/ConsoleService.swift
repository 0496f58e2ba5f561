import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import Metrics
import Mustache
import NIOConcurrencyHelpers
import NIOCore
import PostgresNIO
import RedressContracts
import RedressDomain
import RedressServiceKit
import ServiceLifecycle

/// `redress-console`: the staff console, server-rendered HTML over the staff API. Sign-in with a
/// password (bcrypt) and, for supervisors and admins when required, a TOTP code; sessions in
/// PostgreSQL behind an opaque cookie; a CSRF token in every form; no personal data in any URL.
public enum ConsoleService {
    public static let name = "redress-console"
    public static let defaultPort = 8087

    public struct Settings: Sendable {
        public var casesURL: String
        public var intakeURL: String
        public var requireTOTP: Bool
        /// Cookies marked Secure: the console is served over TLS (behind the deployment's proxy).
        public var secureCookies: Bool

        public static func fromEnvironment(_ environment: [String: String]) throws -> Settings {
            var env = EnvironmentReader(environment)
            let offset = env.integer("REDRESS_PORT_OFFSET", 0, 0...50_000)
            let settings = Settings(
                casesURL: env.value("REDRESS_CONSOLE_CASES_URL") ?? "http://127.0.0.1:\(8082 + offset)",
                intakeURL: env.value("REDRESS_CONSOLE_INTAKE_URL") ?? "http://127.0.0.1:\(8081 + offset)",
                requireTOTP: env.value("REDRESS_CONSOLE_REQUIRE_TOTP") == "true",
                secureCookies: env.value("REDRESS_CONSOLE_SECURE_COOKIES") == "true")
            for name in ["REDRESS_CONSOLE_REQUIRE_TOTP", "REDRESS_CONSOLE_SECURE_COOKIES"] {
                if let v = env.value(name), !["true", "false"].contains(v) { env.problems.append("\(name)='\(v)' must be true or false") }
            }
            try env.check()
            return settings
        }
    }

    public static func main() async throws {
        // The console writes no events (it calls the cases and intake APIs): no outbox relay.
        try await ServiceHost.serve(service: name, defaultPort: defaultPort, relay: false) { host in
            do {
                return try build(host: host, settings: try Settings.fromEnvironment(ProcessInfo.processInfo.environment))
            } catch {
                host.logger.critical("\(error)")
                exit(2)
            }
        }
    }

    /// The console's resources (templates, catalogue, static files) shipped in the package, next
    /// to the executable; REDRESS_CONSOLE_RESOURCES names another copy (an image that moves them).
    static let resources: URL = {
        if let path = ProcessInfo.processInfo.environment["REDRESS_CONSOLE_RESOURCES"], !path.isEmpty { return URL(fileURLWithPath: path) }
        return Bundle.module.bundleURL.appendingPathComponent("Resources")
    }()

    public static func build(host: ServiceHost, settings: Settings) throws -> (Router<RedressRequestContext>, [any Service]) {
        let router = host.router()
        var policy = ConsoleAuth.Policy()
        policy.requireTOTP = settings.requireTOTP
        let pages = try ConsolePages(
            templates: ConsolePages.loadTemplates(),
            catalogue: Catalogue.load(),
            api: StaffAPIClient(casesURL: settings.casesURL, intakeURL: settings.intakeURL, tokens: host.tokens),
            auth: ConsoleAuth(postgres: host.postgres, policy: policy),
            units: UnitDirectory(postgres: host.postgres, logger: host.logger),
            settings: settings)
        pages.add(to: router)
        let refresh = Periodic("unit list", every: .seconds(300), gate: host.gate, logger: host.logger) { try await pages.units.refresh() }
        return (router, [refresh])
    }
}

/// The organisation's units, for pickers (transfer, branch, queue): not personal data, read every few minutes.
final class UnitDirectory: Sendable {
    struct Unit: Sendable {
        var code: String
        var name: String
        var level: String
        var path: String
    }

    let postgres: PostgresClient
    let logger: Logger
    private let box = NIOLockedValueBox<[Unit]>([])

    init(postgres: PostgresClient, logger: Logger) {
        self.postgres = postgres
        self.logger = logger
    }

    func refresh() async throws {
        var units: [Unit] = []
        let rows = try await postgres.query("SELECT code, name, level, path FROM org_units ORDER BY path", logger: logger)
        for try await (code, name, level, path) in rows.decode((String, String, String, String).self) {
            units.append(Unit(code: code, name: name, level: level, path: path))
        }
        box.withLockedValue { $0 = units }
    }

    func all() async -> [Unit] {
        let current = box.withLockedValue { $0 }
        if !current.isEmpty { return current }
        try? await refresh()
        return box.withLockedValue { $0 }
    }

    /// The unit and every unit below it.
    func subtree(of code: String) async -> [Unit] {
        let units = await all()
        guard let root = units.first(where: { $0.code == code }) else { return [] }
        return units.filter { $0.path == root.path || $0.path.hasPrefix(root.path + "/") }
    }

    func name(_ code: String) async -> String {
        await all().first(where: { $0.code == code })?.name ?? code
    }
}

/// The strings of every page, per language (zh-CN first, English second): Resources/catalogue.json.
struct Catalogue: Sendable {
    enum Language: String, Sendable, CaseIterable {
        case zh = "zh-CN"
        case en
    }

    let texts: [String: [String: String]]

    static func load() throws -> Catalogue {
        let url = ConsoleService.resources.appendingPathComponent("catalogue.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { throw ConsoleError("the console catalogue \(url.path) cannot be read") }
        let texts = try JSONDecoder().decode([String: [String: String]].self, from: data)
        for language in Language.allCases where texts[language.rawValue] == nil {
            throw ConsoleError("the console catalogue has no \(language.rawValue) strings")
        }
        return Catalogue(texts: texts)
    }

    func table(_ language: Language) -> [String: String] { texts[language.rawValue] ?? [:] }

    /// A text by key; a missing English text falls back to Chinese, a missing key to the key itself.
    func text(_ key: String, _ language: Language) -> String {
        texts[language.rawValue]?[key] ?? texts[Language.zh.rawValue]?[key] ?? key
    }

    /// A label of a code (`status.assigned`); the code itself when the catalogue has none.
    func label(_ kind: String, _ code: String, _ language: Language) -> String {
        texts[language.rawValue]?["\(kind).\(code)"] ?? texts[Language.zh.rawValue]?["\(kind).\(code)"] ?? code
    }
}

/// Sent instead of a page: to the sign-in page, or back to the page after an action.
struct Redirect: Error {
    var location: String
}

/// A page that cannot be shown: its status and words.
struct PageRefusal: Error {
    var status: HTTPResponse.Status
    var heading: String
    var message: String
}
