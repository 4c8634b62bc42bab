package filter

// streams is the plugin's pool of stream states and the list of admitted
// streams the tick scans. Streams are recycled on proxy_on_delete, so a
// steady load allocates nothing.
type streams struct {
	free   []*stream
	active []*stream // admitted SSE streams not yet released
}

func (ss *streams) get(p *plugin, id uint32) *stream {
	var s *stream
	if n := len(ss.free); n > 0 {
		s = ss.free[n-1]
		ss.free[n-1] = nil
		ss.free = ss.free[:n-1]
	} else {
		s = &stream{}
	}
	s.reset(p, id)
	return s
}

func (ss *streams) put(s *stream) {
	s.p = nil
	ss.free = append(ss.free, s)
}

func (ss *streams) track(s *stream) {
	s.activeIdx = len(ss.active)
	ss.active = append(ss.active, s)
}

// untrack removes s from the active list in O(1) (swap with the last).
func (ss *streams) untrack(s *stream) {
	i := s.activeIdx
	if i < 0 || i >= len(ss.active) || ss.active[i] != s {
		return
	}
	last := len(ss.active) - 1
	ss.active[i] = ss.active[last]
	ss.active[i].activeIdx = i
	ss.active[last] = nil
	ss.active = ss.active[:last]
	s.activeIdx = -1
}
