# Postfix jails. They read the "mail" source of smtpban.hcl: the journal on
# Debian 12 or /var/log/mail.log. Each jail reads only the lines of the
# programs it names (smtpd runs as postfix/smtpd, postfix/submission/smtpd,
# postfix/submissions/smtpd, postfix/smtps/smtpd, postfix-INSTANCE/smtpd),
# and its patterns are matched against the message alone, from its start.
#
# What a client controls in these lines, and how the patterns stay clear of
# it: the address always comes from smtpd's own "name[addr]" at a fixed
# place near the start. The name is the client's reverse DNS name, which
# Postfix accepts only when it is a valid host name (no space, no '['); the
# rest of the line (SASL user name, MAIL FROM and RCPT TO addresses, HELO,
# the text of unknown commands) follows the address, and no pattern reads an
# address from it.

# SMTP AUTH guessing, every mechanism (LOGIN, PLAIN, CRAM-MD5, DIGEST-MD5,
# also spelled in lower case by some clients), both the old form ending in
# the server's challenge or the SASL library's reason ("failed:
# UGFzc3dvcmQ6", "failed: authentication failure") and the one Postfix 3.9
# added and backported to 3.5.22, 3.6.12, 3.7.8 and 3.8.3 ("failed: (reason
# unavailable), sasl_username=alice"), which names the user.
# Client text: the user name after "sasl_username=", always last.
# One line per failed AUTH command: the per-session summary at disconnect
# ("auth=0/3") is not matched, or each attempt would count twice.
# 5 failures in 1h -> banned 1h, doubling to 1w for repeat offenders: slow
# brute force is the common case, and a short window misses it; 5 leaves a
# user who mistypes room for a few tries. IPv6 clients are counted per /64:
# one host has a whole /64 to hop around in.
jail "postfix-sasl" {
  source   = "mail"
  programs = ["postfix*/*smtpd"]
  enabled  = true
  failregex = [
    "warning: [^\\s\\[]*\\[<HOST>\\]: SASL [-\\w]+ authentication failed: [^,]*(?:, sasl_username=(?P<user>[^,]*))?",
  ]
  # A successful AUTH ("client=...[addr], sasl_method=PLAIN,
  # sasl_username=alice") clears that address's failures for alice only:
  # failures logged without a user (before 3.5.22) stay.
  successregex = [
    "[0-9A-Za-z]+: client=[^\\s\\[]*\\[<HOST>\\](?::\\d+)?, sasl_method=[-\\w]+, sasl_username=(?P<user>[^,]*)",
  ]
  # The auth server being down or a client asking for a mechanism we do
  # not offer is not a guess. Matched where smtpd writes the reason, before
  # any client text.
  ignoreregex = [
    "warning: [^\\s\\[]*\\[[^\\]]*\\]: SASL [-\\w]+ authentication failed: (?:Connection lost to authentication server|Invalid authentication mechanism)",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
  # The 3rd banned /64 inside one /48 bans the whole /48 (one site).
  widen {
    after = 3
    ip6   = 48
  }
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}

# Relay probing: an unauthenticated client asking us to relay. A real user
# with a misconfigured client trips it once or twice, a prober many times:
# 3 in 1h -> banned 1d, doubling to 4w.
# Client text: the recipient in <...> and everything after the reason
# (from=<...>, to=<...>, helo=<...>). A recipient that spells "Relay access
# denied" can only get its own sender counted.
jail "postfix-relay" {
  source   = "mail"
  programs = ["postfix*/*smtpd"]
  enabled  = true
  failregex = [
    "(?:NOQUEUE|[0-9A-Za-z]+): reject: RCPT from [^\\s\\[]*\\[<HOST>\\]: [45]\\d\\d [45]\\.\\d+\\.\\d+ <.*>: Relay access denied;",
  ]
  maxretry = 3
  findtime = "1h"
  bantime  = "1d"
  key      = "ip6/64"
  # The 3rd banned /64 inside one /48 bans the whole /48 (one site).
  widen {
    after = 3
    ip6   = 48
  }
  bantime_increment {
    factor = 2
    max    = "4w"
  }
}

# Off by default: unknown recipients (dictionary harvesting), HELO and
# sender rejects, pipelining and errors after AUTH, clients without
# reverse DNS, DATA/BDAT and milter rejects also come from broken but
# honest senders; turn it on once `smtpban replay` shows it is safe here.
# Client text: the address in <...>, the commands after "pipelining after",
# everything after the address.
# 10 in 10m -> banned 1h.
jail "postfix-reject" {
  source   = "mail"
  programs = ["postfix*/*smtpd", "postfix*/cleanup"] # cleanup: milter-reject at END-OF-MESSAGE
  enabled  = false
  failregex = [
    # Unknown recipients: "User unknown in local/virtual/relay recipient
    # table", and "undeliverable address: unknown user" where
    # reject_unverified_recipient asks the next hop.
    "(?:NOQUEUE|[0-9A-Za-z]+): reject: (?:RCPT|MAIL|EHLO|HELO|VRFY) from [^\\s\\[]*\\[<HOST>\\]: [45]\\d\\d [45]\\.\\d+\\.\\d+ (?:<.*>)?: (?:Recipient address rejected: (?:User unknown|undeliverable address: unknown user)|Helo command rejected|Sender address rejected)",
    "improper command pipelining after \\S+ from [^\\s\\[]*\\[<HOST>\\]",
    "(?:too many errors|lost connection) after AUTH from [^\\s\\[]*\\[<HOST>\\]",
    # reject_unknown_client_hostname / reject_unknown_reverse_client_hostname:
    # "Client host rejected: cannot find your hostname, [ADDR]". Real
    # servers with broken reverse DNS do this too (and a DNS outage makes
    # everyone look so: 450), hence off. The address is the one after
    # "from", which Postfix writes; the one in the text may differ.
    "(?:NOQUEUE|[0-9A-Za-z]+): reject: (?:CONNECT|RCPT|MAIL|EHLO|HELO|VRFY|ETRN|DATA) from [^\\s\\[]*\\[<HOST>\\]: [45]\\d\\d [45]\\.\\d+\\.\\d+ Client host rejected: cannot find your (?:reverse )?hostname,",
    # smtpd_data_restrictions and smtpd_end_of_data_restrictions: "reject:
    # DATA from ...: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient
    # bounce", also for BDAT. Lines that repeat an event counted above are
    # ignored (see ignoreregex).
    "(?:NOQUEUE|[0-9A-Za-z]+): reject: (?:DATA|BDAT|END-OF-MESSAGE) from [^\\s\\[]*\\[<HOST>\\]: 5\\d\\d 5\\.\\d+\\.\\d+ ",
    # A milter (rspamd, SpamAssassin, OpenDKIM...) refused the message
    # for good: "milter-reject: END-OF-MESSAGE from host[ADDR]: 5.7.1 Spam
    # message rejected", logged by cleanup for END-OF-MESSAGE, by smtpd
    # before it. Temporary refusals (greylisting, "4.7.1 Try
    # again later") are not counted: a real server retries them.
    "(?:NOQUEUE|[0-9A-Za-z]+): milter-reject: (?:CONNECT|HELO|EHLO|MAIL|RCPT|DATA|END-OF-MESSAGE) from [^\\s\\[]*\\[<HOST>\\]: (?:5\\d\\d )?5\\.\\d+\\.\\d+ ",
  ]
  # "Data command rejected: Improper use of SMTP command pipelining" is
  # the event "improper command pipelining after" already counted, and
  # "Error: no valid recipients" follows the recipient rejects counted one
  # by one: one event, one count.
  ignoreregex = [
    "(?:NOQUEUE|[0-9A-Za-z]+): reject: (?:DATA|BDAT) from [^\\s\\[]*\\[[^\\]]*\\]: \\d{3} [\\d.]+ (?:<DATA>: Data command rejected: Improper use of SMTP command pipelining|Error: no valid recipients);",
  ]
  maxretry = 10
  findtime = "10m"
  bantime  = "1h"
  key      = "ip6/64"
}

# Off by default (only for hosts running postscreen): bots that talk before
# the greeting, hang up, or score on DNS blocklists. 3 in 1h -> banned 1h.
# Client text: what a bot said before the greeting, after "[addr]:port: ".
jail "postscreen" {
  source   = "mail"
  programs = ["postfix*/postscreen"]
  enabled  = false
  failregex = [
    "(?:PREGREET \\d+|HANGUP) after [\\d.]+ from \\[<HOST>\\]:\\d+",
    "DNSBL rank \\d+ for \\[<HOST>\\]:\\d+",
  ]
  maxretry = 3
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
}

# Off by default: clients that DNS blocklists list, as smtpd rejects them
# (reject_rbl_client: "reject: RCPT from host[ADDR]: 554 5.7.1 Service
# unavailable; Client host [ADDR] blocked using zen.spamhaus.org; ...") and
# as postscreen does ("reject: RCPT from [ADDR]:PORT: 550 5.7.1 Service
# unavailable; client [ADDR] blocked using ..."). Postfix already refuses
# them; a ban only saves the work, and a listed address may be a shared
# server with real mail too (one RCPT line per recipient). Where the
# postscreen jail is on, it counts the same connection's "DNSBL rank"
# line: enable one of the two for postscreen's verdicts.
# Client text: from=<...>, to=<...>, helo=<...>, after the address. The
# address is the one after "from"; postscreen writes it as "[ADDR]:PORT".
# 5 in 1h -> banned 1d: a listed client comes back all day.
jail "postfix-rbl" {
  source   = "mail"
  programs = ["postfix*/*smtpd", "postfix*/postscreen"]
  enabled  = false
  failregex = [
    "(?:NOQUEUE|[0-9A-Za-z]+): reject: (?:CONNECT|RCPT|MAIL|EHLO|HELO|DATA) from (?:[^\\s\\[]*\\[<HOST>\\]|\\[<HOST>\\]:\\d+): [45]\\d\\d [45]\\.\\d+\\.\\d+ Service unavailable; (?:Client host|client) \\[[^\\]]*\\] blocked using ",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1d"
  key      = "ip6/64"
}

# Off by default: sessions smtpd ended for too many errors ("too many
# errors after RCPT from host[ADDR]", smtpd_hard_error_limit, 20 by
# default), after any command but AUTH (postfix-reject counts that one).
# Those errors are often the rejects postfix-reject counts one by one:
# use this jail or postfix-reject, not both. A broken but honest client
# reaches the limit too, hence off.
# Client text: none before the address; nothing is read after it.
# 3 in 1h -> banned 1h.
jail "postfix-errors" {
  source   = "mail"
  programs = ["postfix*/*smtpd"]
  enabled  = false
  failregex = [
    "too many errors after (?:CONNECT|EHLO|HELO|MAIL|RCPT|DATA|BDAT|END-OF-MESSAGE|RSET|VRFY|ETRN|NOOP|QUIT|STARTTLS|XCLIENT|XFORWARD|UNKNOWN|DOT) from [^\\s\\[]*\\[<HOST>\\](?::\\d+)?$",
  ]
  maxretry = 3
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
}
