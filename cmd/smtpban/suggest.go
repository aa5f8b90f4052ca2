package main

// suggest returns the name closest to typed, by edit distance (a
// transposition counts as one edit) or as a unique prefix, or "" when
// nothing is close enough to be what was meant.
func suggest(typed string, names []string) string {
	best, bestD := "", len(typed)/2+1 // "statsu" -> status; "xyz" -> nothing
	var prefixed []string
	for _, n := range names {
		if len(typed) >= 2 && len(typed) < len(n) && n[:len(typed)] == typed {
			prefixed = append(prefixed, n)
		}
		if d := distance(typed, n); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

// distance is the optimal string alignment distance between a and b
// (Levenshtein with adjacent transpositions), over bytes: command names
// are ASCII.
func distance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
