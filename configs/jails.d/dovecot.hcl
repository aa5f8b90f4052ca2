# Dovecot jails. They read the "mail" source of smtpban.hcl: the journal or
# the syslog layout ("HOST dovecot[PID]: imap-login: ..."), and also
# Dovecot's own log_path layout, which has no host and no "dovecot" ident
# ("Nov 24 16:04:03 imap-login: Info: ...", "auth: Info: ..."): the regexes
# start at the process name, so both match.
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
# and each counts. The address is the last rip= on the line: only the user
# name before it is the client's own text.
# 5 attempts in 1h -> banned 1h, doubling to 1w: as for SMTP AUTH, slow
# guessing is the common case, and 5 leaves room for a mistyped password.
jail "dovecot" {
  source  = "mail"
  enabled = true
  failregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?(?:Disconnected|Aborted login|Login aborted)[^(]*\\(auth failed, (?P<count>\\d+) attempts(?: in \\d+ secs)?\\)[^:]*: (?:user=<(?P<user>[^>]*)>, )?.*\\brip=<HOST>(?:,|$)",
  ]
  # A successful login of alice clears that address's failures for alice
  # only: an office behind one NAT address whose phone keeps a stale
  # password is not banned while alice's laptop logs in fine.
  successregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?Login: user=<(?P<user>[^>]*)>, .*\\brip=<HOST>(?:,|$)",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
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
jail "dovecot-auth" {
  source  = "mail"
  enabled = false
  failregex = [
    "auth(?:-worker)?(?:\\([^)]*\\))?: (?:Info: )?(?:passwd-file|pam|sql|ldap|shadow|passwd|checkpassword|bsdauth|static)\\((?P<user>[^,()]*),<HOST>(?:,<[^>]*>)?\\): (?:Password mismatch|unknown user|invalid credentials|pam_authenticate\\(\\) failed: [^(]*(?:\\([^)]*\\))?)(?: \\((?:SHA1 of )?given password: (?P<pass>[^)]*)\\))?",
  ]
  # With several passdbs, a miss in one that passes the request on is not
  # a failure yet.
  ignoreregex = [
    " - trying the next (?:passdb|userdb)",
  ]
  # Successes: Dovecot logs IMAP/POP3 logins; SMTP AUTH successes are
  # logged only by Postfix.
  successregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?Login: user=<(?P<user>[^>]*)>, .*\\brip=<HOST>(?:,|$)",
    "postfix[^\\s/\\[]*/(?:[^\\s/\\[]+/)?smtpd(?:\\[\\d+\\])?: [0-9A-Za-z]+: client=[^\\s\\[]*\\[<HOST>\\](?::\\d+)?, sasl_method=[-\\w]+, sasl_username=(?P<user>[^\\s,]+)",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}
