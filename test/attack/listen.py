# A one-connection TCP listener that plays the far end of a network
# procedure: listen.py PORT MODE TEXT READYFILE. It binds every address of
# its network namespace, creates READYFILE once listening, accepts one
# connection (15 s at most), sends TEXT ("\n" and "\r" as escapes), then
# with MODE "close" hangs up, with "drain" reads until the peer leaves
# (10 s at most).
import socket
import sys

port, mode, text, ready = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(1)
open(ready, "w").close()
s.settimeout(15)
try:
    c, _ = s.accept()
except OSError:
    sys.exit(0)
c.settimeout(10)
if text:
    c.sendall(text.replace("\\n", "\n").replace("\\r", "\r").encode())
if mode == "drain":
    try:
        while c.recv(4096):
            pass
    except OSError:
        pass
c.close()
