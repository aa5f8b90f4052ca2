# Dovecot jails. They read the "mail" source of smtpban.hcl (journal or
# syslog layout, "dovecot[PID]: imap-login: ..."); Dovecot's own log_path
# layout ("auth: Info: ...", no host) matches too.

# IMAP, POP3, submission and ManageSieve login failures, as the login
# process logs them when the client gives up or is cut off: one line per
# session ("auth failed, 3 attempts"), logged without auth_verbose.
# SMTP AUTH through Postfix never reaches a login process, so a failure is
# counted once: here or in postfix-sasl, not both.
# 5 sessions in 1h -> banned 1h, doubling to 1w.
jail "dovecot" {
  source  = "mail"
  enabled = true
  failregex = [
    "(?:imap|pop3|submission|managesieve)-login: (?:Info: )?.*\\(auth failed, \\d+ attempts in \\d+ secs\\)[^:]*: user=<(?P<user>[^>]*)>.*?, rip=<HOST>,",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}

# Off by default: each failed password as the passdb logs it (needs
# auth_verbose = yes), e.g. "auth: passwd-file(alice,203.0.113.7): Password
# mismatch". It sees every attempt, including SMTP AUTH that Postfix passes
# to Dovecot, so enabling it alongside postfix-sasl and dovecot counts one
# failure twice: use it instead of them (set their enabled = false), for
# example on a host that logs only through Dovecot's log_path.
jail "dovecot-auth" {
  source  = "mail"
  enabled = false
  failregex = [
    "auth(?:-worker)?(?:\\(\\d+\\))?: (?:Info: )?(?:passwd-file|pam|sql|ldap|shadow|passwd|checkpassword|bsdauth)\\((?P<user>[^,()]*),<HOST>(?:,[^)]*)?\\): (?:Password mismatch|unknown user|pam_authenticate\\(\\) failed)",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}
