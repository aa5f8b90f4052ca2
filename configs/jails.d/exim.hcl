# Exim jails, off by default: a Debian host runs Postfix unless Exim was
# chosen. To use them: set enabled = true. They read Exim's own main log,
# where lines have no ident ("2024-11-24 16:06:07 login authenticator ...");
# the daemon opens a source only when an enabled jail reads it.
source "file" "exim" {
  path = "/var/log/exim4/mainlog"
}

# SMTP AUTH guessing and relay probing (Exim 4.9x). The host is the
# bracketed address after the optional reverse name and "(HELO)": the HELO
# is the client's own text and may hold a fake [address] (Exim refuses a
# HELO with spaces, so it cannot fake the rest). One line per failed AUTH.
# 5 in 1h -> banned 1h, doubling to 1w, as for Postfix.
jail "exim" {
  source  = "exim"
  enabled = false
  failregex = [
    "authenticator failed for (?:[^\\s\\[(]+ )?(?:\\([^)]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)?: 535 Incorrect authentication data(?: \\(set_id=(?P<user>[^)]+)\\))?",
    "H=(?:[^\\s\\[(]+ )?(?:\\([^)]*\\) )?\\[<HOST>\\](?::\\d+)? .*rejected RCPT \\S+: relay not permitted",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}

# Rejected recipients and sender verification, protocol synchronization
# errors, too many bad commands, connections dropped after too many failed
# AUTH commands: noisy senders, not always attackers, so off even where
# Exim runs until `smtpban replay` says otherwise.
# 10 in 10m -> banned 1h.
jail "exim-reject" {
  source  = "exim"
  enabled = false
  failregex = [
    "H=(?:[^\\s\\[(]+ )?(?:\\([^)]*\\) )?\\[<HOST>\\](?::\\d+)? .*rejected RCPT \\S+: (?:Unknown user|[Uu]nrouteable address|Sender verify failed)",
    "H=(?:[^\\s\\[(]+ )?(?:\\([^)]*\\) )?\\[<HOST>\\](?::\\d+)? .*sender verify fail for <",
    "SMTP protocol synchronization error \\([^)]*\\): rejected (?:connection from|\"[^\"]*\") H=(?:[^\\s\\[(]+ )?(?:\\([^)]*\\) )?\\[<HOST>\\]",
    "SMTP call from (?:[^\\s\\[(]+ )?(?:\\([^)]*\\) )?\\[<HOST>\\](?::\\d+)?(?: I=\\[[^\\]]*\\](?::\\d+)?)? dropped: too many (?:unrecognized commands|syntax or protocol errors|nonmail commands|authentication failures)",
  ]
  maxretry = 10
  findtime = "10m"
  bantime  = "1h"
}
