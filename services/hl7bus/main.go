// Command hl7bus is the one binary of the exchange.
package main

func main() {}
