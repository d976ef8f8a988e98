package index

import (
	"reflect"
	"testing"
)

func TestDialectIn(t *testing.T) {
	ids := []string{"a", "b", "c"}
	for _, tc := range []struct {
		driver   string
		wantCond string
		wantArgs []any
	}{
		{DriverSQLite, "IN (?,?,?)", []any{"a", "b", "c"}},
		// One array: the statement has one shape whatever the batch.
		{DriverPostgres, "= ANY(?::text[])", []any{ids}},
	} {
		d, err := dialectOf(tc.driver)
		if err != nil {
			t.Fatal(err)
		}
		cond, args := d.in(ids)
		if cond != tc.wantCond || !reflect.DeepEqual(args, tc.wantArgs) {
			t.Errorf("%s: in = %q %v, want %q %v", tc.driver, cond, args, tc.wantCond, tc.wantArgs)
		}
		if got := d.rebind("x " + cond); tc.driver == DriverPostgres && got != "x = ANY($1::text[])" {
			t.Errorf("%s: rebind = %q", tc.driver, got)
		}
	}
}
