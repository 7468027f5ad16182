package receivers

// WatchOnce is one pass of the delivery watch, for the tests.
var WatchOnce = (*Manager).watchOnce
