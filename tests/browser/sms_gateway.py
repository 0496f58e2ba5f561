"""The customers' phones, for the browser test: an SMS/WeChat gateway that accepts every message
notify sends (POST JSON {id, channel, to, template, subject, body}) and appends it to a JSON-lines
file the test reads. Usage: sms_gateway.py PORT FILE"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, FILE = int(sys.argv[1]), sys.argv[2]


class Gateway(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        message = json.loads(body)
        with open(FILE, "a", encoding="utf-8") as out:
            out.write(json.dumps(message, ensure_ascii=False) + "\n")
        reply = json.dumps({"messageId": "fake-" + message["id"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Gateway).serve_forever()
