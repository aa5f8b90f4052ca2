# Dovecot jails. They read the "mail" source of smtpban.hcl: the journal or
# the syslog layout ("HOST dovecot[PID]: imap-login: ..."), whose program is
# "dovecot"; a file source with format = "dovecot" reads Dovecot's own
# log_path layout ("Nov 24 16:04:03 imap-login: Info: ...") and gives its
# lines the same program. Patterns start at the process name, which Dovecot
# writes, and allow the "Info: " that only log_path has.
#
# Counting each attempt once: when Postfix authenticates SMTP clients
# through Dovecot, one failed AUTH is logged twice, by Postfix ("SASL LOGIN
# authentication failed") and by Dovecot's auth process ("passwd-file(...):
# Password mismatch"). The shipped jails never count both halves:
# postfix-sasl counts SMTP AUTH from Postfix's lines; "dovecot" counts only
# the login processes (imap-login, pop3-login, submission-login,
# managesieve-login), which Postfix's requests never go through; the
# auth-process lines are used only by "dovecot-auth", off by default and
# meant to replace both (see there).

# IMAP, POP3, submission and ManageSieve login failures, as the login
# process logs them when the client gives up or is cut off: one line per
# session, for every user Dovecot refused (wrong password or unknown user,
# pam, sql, ldap or passwd-file alike), logged without auth_verbose. The
# line says how many attempts the session made ("auth failed, 3 attempts")
# and each counts.
# Client text: the user name in user=<...>, which Dovecot logs with its
# spaces, commas and '>' kept, so it can spell a whole fake "rip=". The
# address is the last rip= on the line, and only fields Dovecot writes
# itself may follow it (lip=, mpid=, the TLS state, session=<id>), up to
# the end of the line.
# 5 attempts in 1h -> banned 1h, doubling to 1w: as for SMTP AUTH, slow
# guessing is the common case, and 5 leaves room for a mistyped password.
jail "dovecot" {
  source   = "mail"
  programs = ["dovecot"]
  enabled  = true
  failregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?(?:Disconnected|Aborted login|Login aborted)[^(]*(?:\\(size=\\d+\\)[^(]*)?\\(auth failed, (?P<count>\\d+) attempts(?: in \\d+ secs)?\\)[^:]*: (?:user=<(?P<user>.*)>, )?.*\\brip=<HOST>(?:, lip=[^,\\s]*)?(?:, mpid=\\d+)?(?:, [^=<>]*)?(?:, session=<[^<>]*>)?$",
    # A proxy whose backend refused the password: 2.2/2.3 "Disconnected
    # (proxy dest auth failed)", one attempt; 2.4 "Login aborted: ...
    # (proxy dest authentication failure to HOST, 2 attempts in 3 secs,
    # last failure: ...) (proxy_dest_auth_failed)" (src/login-common/
    # client-common.c). The backend's reply after "last failure:" is
    # bounded by the ") (proxy_dest_auth_failed): " Dovecot writes.
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?(?:Disconnected|Aborted login|Login aborted)[^(]*\\(proxy dest (?:auth failed\\)|authentication failure to [^\\s,()]+, (?P<count>\\d+) attempts in \\d+ secs(?:, last failure: [^()]*(?:\\([^()]*\\)[^()]*)*)?\\) \\(proxy_dest_auth_failed\\)): (?:user=<(?P<user>.*)>, )?.*\\brip=<HOST>(?:, lip=[^,\\s]*)?(?:, mpid=\\d+)?(?:, [^=<>]*)?(?:, session=<[^<>]*>)?$",
  ]
  # A successful login of alice clears that address's failures for alice
  # only: an office behind one NAT address whose phone keeps a stale
  # password is not banned while alice's laptop logs in fine.
  successregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?Login: user=<(?P<user>.*)>, .*\\brip=<HOST>(?:, lip=[^,\\s]*)?(?:, mpid=\\d+)?(?:, [^=<>]*)?(?:, session=<[^<>]*>)?$",
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

# Off by default: each failed password as the auth process logs it (needs
# auth_verbose = yes), e.g. "auth: Info: passwd-file(alice,203.0.113.7):
# Password mismatch". It sees every attempt, SMTP AUTH that Postfix passes
# to Dovecot included, and it is the only jail that sees the password
# fingerprint: with auth_verbose_passwords = sha1:6 Dovecot appends "(SHA1
# of given password: 1a2b3c)", and the same (address, user, fingerprint)
# counts once within findtime, so a client retrying one stale password is
# not a guesser. Use it INSTEAD of "dovecot" and, where Postfix
# authenticates through Dovecot, of "postfix-sasl" (set their enabled =
# false): together they would see one attempt in two jails.
# Client text: the user name inside "passwd-file(USER,ADDR)", logged with
# its commas and parentheses (and the password with auth_verbose_passwords
# = plain, which this jail refuses to read: see ignoreregex). The address is the last ",ADDR" before a "): REASON" that ends
# the line, so a user name spelling ",192.0.2.9): Password mismatch" is
# followed by the real ",ADDR): ..." and never read as the address. With
# several passdbs, a miss that passes the request on ("... - trying the next
# passdb") does not end the line with the reason, so it is no failure yet.
jail "dovecot-auth" {
  source   = "mail"
  programs = ["dovecot", "postfix*/*smtpd"]
  enabled  = false
  failregex = [
    # Dovecot 2.0-2.3: "auth: passwd-file(USER,ADDR): ...", the session
    # id or an empty field after the address ("sql(u,ADDR,<id>)",
    # "ldap(u,ADDR,)"), and the auth-worker's connection prefix
    # ("auth-worker(57065): conn unix:auth-worker (uid=143):
    # auth-worker<225622>: sql(...)") of 2.3.
    "auth(?:-worker)?(?:\\([^)]*\\))?: (?:Info: )?(?:conn unix:auth-worker \\([^()]*\\): auth-worker<\\d+>: )?(?:passwd-file|pam|sql|ldap|shadow|passwd|checkpassword|bsdauth|static)\\((?P<user>.*),<HOST>(?:,(?:<[^<>]*>)?)?\\): (?:Password mismatch(?: \\(for LDAP bind\\))?|unknown user|invalid credentials|pam_authenticate\\(\\) failed: [^()]*(?:\\([^()]*\\))?)(?: \\(SHA1 of given password: (?P<pass>[0-9a-fA-F]+)\\))?$",
    # Dovecot 2.4 moved the user and address into the event prefix
    # (src/auth/auth-request.c get_log_prefix): "auth(USER,ADDR,sasl:plain)
    # <session>: sql: Password mismatch", "auth-worker(USER,ADDR,sasl:login)
    # <pid><session>: request [3]: pam: pam_authenticate() failed: ...".
    # The user name (sanitized, at most 64 characters) may hold ",ADDR,";
    # the address is the last one followed by the fields Dovecot writes
    # up to the end of the line, as above.
    "auth(?:-worker)?\\((?P<user>.*),<HOST>(?:,sasl:[-\\w]+)?(?:,master)?\\)(?:<\\d+>)?(?:<[^<>]*>)?(?:: request \\[\\d+\\])?: (?:Info: )?[-\\w]+: (?:Password mismatch(?: \\(for LDAP bind\\))?|unknown user|invalid credentials|pam_authenticate\\(\\) failed: [^()]*(?:\\([^()]*\\))?)(?: \\(SHA1 of given password: (?P<pass>[0-9a-fA-F]+)\\))?$",
  ]
  # auth_verbose_passwords = plain logs the password, the client's text,
  # after the address: a password can then spell a fake ",ADDR): Password
  # mismatch" that ends the line, and no pattern can tell which address
  # Dovecot wrote. Such lines are not counted at all; use sha1 (the
  # fingerprint is hex that Dovecot computes) or no. A user name holding
  # " (given password: " is ignored too, which costs nothing: no account
  # has such a name.
  ignoreregex = [
    "auth(?:-worker)?[(:].* \\(given password: ",
  ]
  # Successes: Dovecot logs IMAP/POP3 logins; SMTP AUTH successes are
  # logged only by Postfix.
  successregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?Login: user=<(?P<user>.*)>, .*\\brip=<HOST>(?:, lip=[^,\\s]*)?(?:, mpid=\\d+)?(?:, [^=<>]*)?(?:, session=<[^<>]*>)?$",
    "[0-9A-Za-z]+: client=[^\\s\\[]*\\[<HOST>\\](?::\\d+)?, sasl_method=[-\\w]+, sasl_username=(?P<user>[^,]*)",
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

# Off by default: logins tried in cleartext where Dovecot requires TLS
# first (disable_plaintext_auth = yes, 2.4's auth_allow_cleartext = no):
# "pop3-login: Aborted login (tried to use disabled plaintext auth)" (2.2),
# "(tried to use disallowed plaintext auth)" (2.3), "Login aborted: ...
# (tried to use disallowed cleartext auth, 1 attempts in 0 secs)
# (cleartext_auth_disabled)" (2.4, src/login-common/client-common.c). No
# password was checked, so "dovecot" does not count it: most such clients
# are bots scanning port 110/143, but a phone set up without TLS does it at
# every poll and would be banned within the hour. Turn it on where no real
# client can be set up that way; it counts one per session, and no other
# jail counts these sessions.
# Client text: the user name in user=<...>; the address is the last rip=,
# as in "dovecot".
jail "dovecot-cleartext" {
  source   = "mail"
  programs = ["dovecot"]
  enabled  = false
  failregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?(?:Disconnected|Aborted login|Login aborted)[^(]*\\(tried to use (?:disabled|disallowed) (?:plaintext|cleartext) auth(?:, (?P<count>\\d+) attempts in \\d+ secs\\) \\(cleartext_auth_disabled)?\\): (?:user=<(?P<user>.*)>, )?.*\\brip=<HOST>(?:, lip=[^,\\s]*)?(?:, mpid=\\d+)?(?:, [^=<>]*)?(?:, session=<[^<>]*>)?$",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
}

# Off by default: each failed password as PAM's pam_unix logs it, when
# Dovecot's passdb is pam (system accounts are mail accounts):
# "pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0
# tty=dovecot ruser=USER rhost=ADDR" and, for an existing account,
# "  user=USER" after it (Linux-PAM modules/pam_unix/support.c). It needs
# no auth_verbose. pam_unix writes through syslog() from Dovecot's auth
# process, whose ident is "auth" (older Dovecot: "dovecot-auth"), or
# "dovecot" where Dovecot opened the log. It sees every attempt, SMTP AUTH
# that Postfix passes to Dovecot included, like "dovecot-auth": use it
# INSTEAD of "dovecot" and, where Postfix authenticates through Dovecot, of
# "postfix-sasl", and never together with "dovecot-auth" (which logs the
# same attempt as "pam(...): pam_authenticate() failed").
# Client text: ruser=, the user name as given, which may hold spaces and a
# fake "rhost=1.2.3.4". The address is the last rhost= on the line, and
# only " user=NAME" may follow it, which pam_unix writes only for an
# account that exists (a name without spaces).
jail "dovecot-pam" {
  source   = "mail"
  programs = ["dovecot", "auth", "dovecot-auth"]
  enabled  = false
  failregex = [
    "pam_unix\\(dovecot:auth\\): authentication failure; logname=\\S* uid=\\d+ euid=\\d+ tty=\\S* ruser=(?P<user>.*) rhost=<HOST>(?:\\s+user=\\S+)?\\s*$",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  key      = "ip6/64"
  widen {
    after = 3
    ip6   = 48
  }
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}
