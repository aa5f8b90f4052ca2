package jails

import (
	"math"
	"time"
)

// BanDuration is how long to ban a key that has already been banned prior
// times: BanTime × Factor^prior, capped at Increment.Max (0: no cap). A
// Factor of 1 or less does not escalate. The result never overflows.
func (j *Jail) BanDuration(prior int) time.Duration {
	d := j.BanTime
	if prior <= 0 || j.Increment.Factor <= 1 || d <= 0 {
		return capped(d, j.Increment.Max)
	}
	f := float64(d) * math.Pow(j.Increment.Factor, float64(prior))
	if f >= math.MaxInt64 || math.IsInf(f, 0) || math.IsNaN(f) {
		if j.Increment.Max > 0 {
			return j.Increment.Max
		}
		return time.Duration(math.MaxInt64)
	}
	return capped(time.Duration(f), j.Increment.Max)
}

func capped(d, limit time.Duration) time.Duration {
	if limit > 0 && d > limit {
		return limit
	}
	return d
}
