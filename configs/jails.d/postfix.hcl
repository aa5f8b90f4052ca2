# Postfix jails. They read the "mail" source of smtpban.hcl: the journal on
# Debian 12 (lines "HOST IDENT[PID]: MESSAGE") or /var/log/mail.log (the same
# with a date in front); the regexes match anywhere in the line, so both work.
# smtpd runs as postfix/smtpd, postfix/submission/smtpd, postfix/smtps/smtpd.

# SMTP AUTH guessing, every mechanism (LOGIN, PLAIN, CRAM-MD5, DIGEST-MD5,
# also spelled in lower case by some clients), both the old form ending in
# the server's challenge or the SASL library's reason ("failed:
# UGFzc3dvcmQ6", "failed: authentication failure") and the one Postfix 3.9
# added and backported to 3.5.22, 3.6.12, 3.7.8 and 3.8.3 ("failed: (reason
# unavailable), sasl_username=alice"), which names the user.
# One line per failed AUTH command: the per-session summary at disconnect
# ("auth=0/3") is not matched, or each attempt would count twice.
# 5 failures in 1h -> banned 1h, doubling to 1w for repeat offenders: slow
# brute force is the common case, and a short window misses it; 5 leaves a
# user who mistypes room for a few tries.
jail "postfix-sasl" {
  source  = "mail"
  enabled = true
  failregex = [
    "postfix[^\\s/\\[]*/(?:[^\\s/\\[]+/)?smtpd(?:\\[\\d+\\])?: warning: [^\\s\\[]*\\[<HOST>\\]: SASL [-\\w]+ authentication failed: [^,]*(?:, sasl_username=(?P<user>[^\\s,]+))?",
  ]
  # A successful AUTH ("client=...[addr], sasl_method=PLAIN,
  # sasl_username=alice") clears that address's failures for alice only:
  # failures logged without a user (before 3.5.22) stay.
  successregex = [
    "postfix[^\\s/\\[]*/(?:[^\\s/\\[]+/)?smtpd(?:\\[\\d+\\])?: [0-9A-Za-z]+: client=[^\\s\\[]*\\[<HOST>\\](?::\\d+)?, sasl_method=[-\\w]+, sasl_username=(?P<user>[^\\s,]+)",
  ]
  # The auth server being down or a client asking for a mechanism we do
  # not offer is not a guess.
  ignoreregex = [
    "authentication failed: (?:Connection lost to authentication server|Invalid authentication mechanism)",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}

# Relay probing: an unauthenticated client asking us to relay. A real user
# with a misconfigured client trips it once or twice, a prober many times:
# 3 in 1h -> banned 1d, doubling to 4w.
jail "postfix-relay" {
  source  = "mail"
  enabled = true
  failregex = [
    "postfix[^\\s/\\[]*/(?:[^\\s/\\[]+/)?smtpd(?:\\[\\d+\\])?: (?:NOQUEUE|[0-9A-Za-z]+): reject: RCPT from [^\\s\\[]*\\[<HOST>\\]: [45]\\d\\d [^;]*Relay access denied",
  ]
  maxretry = 3
  findtime = "1h"
  bantime  = "1d"
  bantime_increment {
    factor = 2
    max    = "4w"
  }
}

# Off by default: unknown recipients (dictionary harvesting), HELO and
# sender rejects, pipelining and errors after AUTH also come from broken
# but honest senders; turn it on once `smtpban replay` shows it is safe here.
# 10 in 10m -> banned 1h.
jail "postfix-reject" {
  source  = "mail"
  enabled = false
  failregex = [
    "postfix[^\\s/\\[]*/(?:[^\\s/\\[]+/)?smtpd(?:\\[\\d+\\])?: (?:NOQUEUE|[0-9A-Za-z]+): reject: (?:RCPT|MAIL|EHLO|HELO|VRFY) from [^\\s\\[]*\\[<HOST>\\]: [45]\\d\\d [^;]*(?:Recipient address rejected: User unknown|Helo command rejected|Sender address rejected)",
    "postfix[^\\s/\\[]*/(?:[^\\s/\\[]+/)?smtpd(?:\\[\\d+\\])?: improper command pipelining after \\S+ from [^\\s\\[]*\\[<HOST>\\]",
    "postfix[^\\s/\\[]*/(?:[^\\s/\\[]+/)?smtpd(?:\\[\\d+\\])?: (?:too many errors|lost connection) after AUTH from [^\\s\\[]*\\[<HOST>\\]",
  ]
  maxretry = 10
  findtime = "10m"
  bantime  = "1h"
}

# Off by default (only for hosts running postscreen): bots that talk before
# the greeting, hang up, or score on DNS blocklists. 3 in 1h -> banned 1h.
jail "postscreen" {
  source  = "mail"
  enabled = false
  failregex = [
    "postfix[^\\s/\\[]*/postscreen(?:\\[\\d+\\])?: (?:PREGREET \\d+|HANGUP) after [\\d.]+ from \\[<HOST>\\]:\\d+",
    "postfix[^\\s/\\[]*/postscreen(?:\\[\\d+\\])?: DNSBL rank \\d+ for \\[<HOST>\\]:\\d+",
  ]
  maxretry = 3
  findtime = "1h"
  bantime  = "1h"
}
