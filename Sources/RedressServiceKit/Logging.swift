import Foundation
import Logging
import RedressDomain

/// One log line per event, JSON by default, with personal data scrubbed from message and metadata
/// as a last line of defence (code should already log masked values only).
public struct RedressLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let format: ServiceConfiguration.LogFormat
    let service: String

    public init(label: String, service: String, level: Logger.Level, format: ServiceConfiguration.LogFormat) {
        self.label = label
        self.service = service
        self.logLevel = level
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        FileHandle.standardError.write(Data((line(for: event) + "\n").utf8))
    }

    /// The line an event is written as: personal data scrubbed from message and metadata alike.
    func line(for event: LogEvent) -> String {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let message = PersonalData.redact(event.message.description)
        let line: String
        switch format {
        case .json:
            var fields: [(String, String)] = [
                ("ts", Timestamp.format(Date())), ("level", event.level.rawValue), ("service", service),
                ("logger", label), ("msg", message),
            ]
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                fields.append((key, PersonalData.redact(value.description)))
            }
            line = "{" + fields.map { "\(Self.quote($0.0)):\(Self.quote($0.1))" }.joined(separator: ",") + "}"
        case .text:
            // One event, one line: a newline in a message or a value must not forge a second log line.
            func flat(_ text: String) -> String { text.replacingOccurrences(of: "\r", with: "\\r").replacingOccurrences(of: "\n", with: "\\n") }
            let meta = merged.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\(flat(PersonalData.redact($0.value.description)))" }.joined(separator: " ")
            line = "\(Timestamp.format(Date())) \(event.level.rawValue.uppercased()) \(service) \(label): \(flat(message))\(meta.isEmpty ? "" : " " + meta)"
        }
        return line
    }

    static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

public enum RedressLogging {
    /// Installs the Redress log handler for the whole process. Call once, first thing in `main`.
    public static func bootstrap(service: String, level: Logger.Level, format: ServiceConfiguration.LogFormat) {
        LoggingSystem.bootstrap { label in
            RedressLogHandler(label: label, service: service, level: level, format: format)
        }
    }
}
