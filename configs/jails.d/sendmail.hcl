# Sendmail jail, off by default: a Debian host runs Postfix unless Sendmail
# was chosen. Sendmail logs through syslog to /var/log/mail.log; the daemon
# opens this source only when an enabled jail reads it.
source "file" "sendmail" {
  path = "/var/log/mail.log"
}

# SMTP AUTH guessing. Sendmail logs the client's user name before the real
# relay=, and an attacker can put "relay=[1.2.3.4]" into that name: the
# pattern takes the last relay= on the line. 5 in 1h -> banned 1h, doubling
# to 1w.
jail "sendmail-auth" {
  source  = "sendmail"
  enabled = false
  failregex = [
    "AUTH failure \\([^)]*\\): .*?(?:user=(?P<user>.*), )?relay=(?:[^\\s\\[]+ )?\\[(?:IPv6:)?<HOST>\\](?: \\(may be forged\\))?\\s*$",
    ": (?:[^\\s\\[]+ )?\\[(?:IPv6:)?<HOST>\\](?: \\(may be forged\\))?: possible SMTP attack: command=AUTH",
  ]
  maxretry = 5
  findtime = "1h"
  bantime  = "1h"
  bantime_increment {
    factor = 2
    max    = "1w"
  }
}
