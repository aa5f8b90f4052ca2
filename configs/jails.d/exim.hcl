# Exim jails, off by default: a Debian host runs Postfix unless Exim was
# chosen. To use them: set enabled = true. They read Exim's own main log,
# where lines have no ident ("2024-11-24 16:06:07 login authenticator ..."):
# format = "exim" names their program "exim". Exim writing to syslog
# (log_file_path = syslog) logs as "exim" or "exim4", with its own stamp
# at the start of the message; the patterns allow it. The daemon opens a
# source only when an enabled jail reads it.
source "file" "exim" {
  path   = "/var/log/exim4/mainlog"
  format = "exim"
}

# SMTP AUTH guessing and relay probing (Exim 4.9x). The host is the
# bracketed address after the optional reverse name and "(HELO)".
# Client text: the HELO in (...), which may hold a fake [address] but no
# space (Exim refuses a HELO with spaces, so it cannot fake the rest); the
# set_id= user name; F=<sender> and the recipient, which follow the
# address. One line per failed AUTH.
# 5 in 1h -> banned 1h, doubling to 1w, as for Postfix.
jail "exim" {
  source   = "exim"
  programs = ["exim", "exim4"]
  enabled  = false
  failregex = [
    # "login authenticator failed for (HELO) [ADDR]:PORT I=[...]:25:
    # 535 Incorrect authentication data (set_id=USER)": with or without
    # the reverse name, HELO, ports, interface (log_selector
    # +incoming_interface), ident (U=) and connection id (Ci=, 4.98+),
    # and the "H=" that 4.98 puts before the host (src/src/smtp_in.c,
    # host_and_ident). Not counted: "435 Unable to authenticate at
    # present" (our side failed), "501 Authentication cancelled" and
    # "501 Invalid base64 data" (no password was checked).
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?[-\\w]+ authenticator failed for (?:H=)?(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)?(?: U=\\S*)?(?: Ci=\\d+)?: 535 Incorrect authentication data(?: \\(set_id=(?P<user>.*)\\))?$",
    # AUTH on a port where Exim does not offer it (port 25 without TLS):
    # no real client does that, password-guessing bots do. The command
    # Exim quotes is the client's, quotes and all: the address is the one
    # in the last " H=" before the fixed end of the line.
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?SMTP protocol error in \".*\" H=(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)?(?: U=\\S*)?(?: Ci=\\d+)? AUTH command used when not advertised$",
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?H=(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)? .*rejected RCPT \\S+: relay not permitted",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}

# Rejected recipients and sender verification, protocol synchronization
# errors, too many bad commands, connections dropped after too many failed
# AUTH commands: noisy senders, not always attackers, so off even where
# Exim runs until `smtpban replay` says otherwise.
# Client text: as for "exim", and the command Exim quotes in a
# synchronization error ('rejected "EHLO x" H=...'): it may hold a quote
# and a fake H=[address], so only the form with the address at a fixed
# place ("rejected connection from H=") is read.
# 10 in 10m -> banned 1h.
jail "exim-reject" {
  source   = "exim"
  programs = ["exim", "exim4"]
  enabled  = false
  failregex = [
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?H=(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)? .*rejected RCPT \\S+: (?:Unknown user|[Uu]nrouteable address|Sender verify failed)",
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?H=(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)? .*sender verify fail for <",
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?SMTP protocol synchronization error \\([^)]*\\): rejected connection from H=(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\]",
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?SMTP call from (?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)? dropped: too many (?:unrecognized commands|syntax or protocol errors|nonmail commands|authentication failures)",
  ]
  maxretry = 10
  findtime = "10m"
  bantime  = "1h"
  key      = "ip6/64"
}

# Off by default: connections that never sent MAIL, and connections one
# of our own ACLs dropped. "no MAIL in SMTP connection from (HELO)
# [ADDR]:PORT I=[...]:25 D=21s C=EHLO,STARTTLS" (log_selector
# +smtp_no_mail, on in Debian's exim4 config) is a scanner, or a
# monitoring probe, or a server that gave up, hence off. A session that
# tried AUTH is not counted here ("C=" then lists AUTH): its attempts count
# in "exim", one each. "SMTP connection from [ADDR]:PORT closed by DROP in
# ACL" follows a reject line our ACL logged: counted here, once per
# connection; where exim-reject counts that reject too (a RCPT ACL with
# "drop" and "Unknown user"), enable one of the two.
# Client text: as for "exim": the HELO, which holds no space. Everything
# the pattern reads after the address is Exim's own (I=, U=, Ci=, D=, the
# TLS fields, C=), up to the end of the line.
# 10 in 1h -> banned 1h.
jail "exim-connection" {
  source   = "exim"
  programs = ["exim", "exim4"]
  enabled  = false
  failregex = [
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?no MAIL in (?:TFO\\*? )?SMTP connection from (?:H=)?(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)?(?: U=\\S*)?(?: Ci=\\d+)? D=[\\d.hmsd]+(?: X=\\S+)?(?: CV=\\w+)?(?: C=(?:\\.\\.\\.)?(?:EHLO|HELO|STARTTLS|QUIT|RSET|NOOP|HELP|VRFY|EXPN|ETRN|PROXY)(?:,(?:EHLO|HELO|STARTTLS|QUIT|RSET|NOOP|HELP|VRFY|EXPN|ETRN|PROXY))*)?$",
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?(?:\\w{6}-\\w{6,11}-\\w{2,4} )?(?:TFO\\*? )?SMTP connection from (?:H=)?(?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)?(?: U=\\S*)?(?: Ci=\\d+)?(?: D=[\\d.hmsd]+)? closed by DROP in ACL$",
  ]
  maxretry = 10
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
}
