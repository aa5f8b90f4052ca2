# Sendmail jail, off by default: a Debian host runs Postfix unless Sendmail
# was chosen. Sendmail logs through syslog to /var/log/mail.log; the daemon
# opens this source only when an enabled jail reads it.
source "file" "sendmail" {
  path = "/var/log/mail.log"
}

# SMTP AUTH guessing. Sendmail (sm-mta on Debian, sm-acceptingconnections
# on some hosts) logs "QUEUEID: AUTH
# failure (MECH): REASON, user=NAME, relay=HOST [ADDR]".
# Client text: the user name, before the real relay=, which may hold
# "relay=[1.2.3.4]": the pattern takes the last relay= and nothing may
# follow it but "(may be forged)". 5 in 1h -> banned 1h, doubling to 1w.
jail "sendmail-auth" {
  source   = "sendmail"
  programs = ["sm-*", "sendmail"]
  enabled  = false
  failregex = [
    "(?:[0-9A-Za-z]+: )?AUTH failure \\([^)]*\\): .*?(?:user=(?P<user>.*), )?relay=(?:[^\\s\\[]+ )?\\[(?:IPv6:)?<HOST>\\](?: \\(may be forged\\))?\\s*$",
    "(?:[0-9A-Za-z]+: )?(?:[^\\s\\[]+ )?\\[(?:IPv6:)?<HOST>\\](?: \\(may be forged\\))?: possible SMTP attack: command=AUTH",
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
