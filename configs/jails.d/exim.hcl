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
    "(?:\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d(?:\\.\\d+)? (?:[-+]\\d{4} )?(?:\\[\\d+\\] )?)?[-\\w]+ authenticator failed for (?:[^\\s\\[(]+ )?(?:\\([^)\\s]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)?: 535 Incorrect authentication data(?: \\(set_id=(?P<user>.*)\\))?",
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
