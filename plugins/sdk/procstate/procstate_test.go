package procstate

import "testing"

func TestBounded(t *testing.T) {
	m := New[int](100)
	for pid := uint32(0); pid < 10000; pid++ {
		m.Put(pid, int(pid))
		if m.Len() > 100 {
			t.Fatalf("%d entries, bound 100", m.Len())
		}
	}
	if v, ok := m.Get(9999); !ok || v != 9999 {
		t.Fatal("the newest entry must be kept")
	}
	m.Put(9999, 1) // an update never evicts
	m.Delete(9999)
	if _, ok := m.Get(9999); ok {
		t.Fatal("deleted")
	}
	if New[int](0).max != 1 {
		t.Fatal("a zero bound holds one")
	}
}
